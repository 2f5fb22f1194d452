"""The Model screen: the backbone registry, the training mode and every hyperparameter."""
