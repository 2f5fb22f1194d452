"""The Attack screen: adversarial examples against the chosen run (engine.adversarial.attacks)."""
