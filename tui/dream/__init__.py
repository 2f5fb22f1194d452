"""The Dream screen: the image a class wants to see (engine.adversarial.dreams)."""
