"""The backbone families, one module each, behind engine.models.family.Family: EfficientNet-Lite (lite),
torchvision's classifiers (torchvision_models) and timm's pretrained models (timm_models, with timm_build and
timm_hub). engine.models.registry holds them in its table; a plug-in family registers with
engine.models.registry.register_family."""
