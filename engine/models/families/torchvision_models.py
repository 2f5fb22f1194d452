"""torchvision's classification models, by name: built through torchvision's own `get_model(name, weights=...)`,
so the weights enum's constructor arguments (Inception's `transform_input`, ViT's `image_size`, …) apply;
preprocessing, accuracy and size are read from the weights' metadata; the weights are files in the torch hub
cache (engine.models.weights), checked to load with weights_only=True before torchvision unpickles them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import torchvision
from torch import nn
from torchvision.models import SqueezeNet

from engine.core.errors import ConfigError, WeightsError
from engine.core.records import IMAGENET_MEAN, IMAGENET_STD
from engine.models.family import Family
from engine.models.spec import BackboneSpec, WeightsStatus
from engine.models.weights import (
    ensure_hub_file,
    file_identity,
    hub_file,
    hub_file_status,
    load_into,
    read_state_dict,
)

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

# The lesson's list first, in this order; the rest of torchvision's classifiers are reachable by name.
FEATURED_TORCHVISION = [
    "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
    "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
]

# Families whose position embeddings / attention partitions are sized for one input side: they take exactly
# the size their weights were trained at (torchvision asserts it in forward).
FIXED_INPUT_FAMILIES = ("vit_", "maxvit_")

# Inception's auxiliary classifiers: a state dict saved from torchvision's pretrained model still holds them
AUX_HEADS = ("AuxLogits.", "aux1.", "aux2.")


@functools.cache
def torchvision_classifiers() -> tuple[str, ...]:
    return tuple(torchvision.models.list_models(module=torchvision.models))


def torchvision_weights(spec: BackboneSpec):
    """The torchvision weights enum member the registry uses for `spec` (its DEFAULT)."""
    if spec.tv_weights is None:
        raise ConfigError(f"{spec.name} is not a torchvision backbone: it has no torchvision weights enum.")
    _, _, member = spec.tv_weights.partition(".")
    return getattr(torchvision.models.get_model_weights(spec.name), member)


def torchvision_weights_file(spec: BackboneSpec) -> Path:
    """Where torch.hub keeps (and torchvision's builder looks for) the spec's weights file."""
    return hub_file(torchvision_weights(spec).url)


def without_aux_heads(model: nn.Module) -> nn.Module:
    """Inception-v3 built with its weights keeps its auxiliary classifier (torchvision refuses
    aux_logits=False with weights), and in train mode it then returns a tuple of logits: drop it, as
    torchvision's GoogLeNet builder does by default. Nobody trains it here; the features never use it."""
    if getattr(model, "AuxLogits", None) is not None:
        # Inception3's own attributes, set through setattr: `model` is typed as any nn.Module
        setattr(model, "aux_logits", False)  # noqa: B010
        setattr(model, "AuxLogits", None)  # noqa: B010
    return model


def architecture_kwargs(spec: BackboneSpec) -> dict:
    """The constructor arguments that give a random model the pretrained model's architecture: what
    torchvision's builder sets itself when it is given the spec's weights, without auxiliary heads.

    torchvision applies the latter only when `weights=` is passed; a random backbone (and the model a full
    checkpoint is loaded into) must have the same architecture as the pretrained one, so we pass them
    ourselves. tests/engine/models/test_backbones_all.py checks, for every listed name, that the result equals
    what torchvision builds with the weights.
    """
    meta = torchvision_weights(spec).meta
    kwargs: dict = {}
    if spec.name in ("googlenet", "inception_v3"):
        # the weights expect inputs re-normalised the Inception way (transform_input); see without_aux_heads
        kwargs.update(transform_input=True, aux_logits=False, init_weights=True)
    elif spec.name.startswith("vit_"):
        kwargs["image_size"] = meta["min_size"][0]
    elif spec.name.startswith("maxvit_"):
        kwargs["input_size"] = meta["min_size"]
    return kwargs


def _conv_classifier(model: nn.Module) -> nn.Conv2d | None:
    """SqueezeNet's classifier: dropout, a 1x1 convolution to the classes, ReLU, global pooling. None for
    every other model."""
    if not isinstance(model, SqueezeNet):
        return None
    return next(m for m in model.classifier if isinstance(m, nn.Conv2d))


class TorchvisionFamily(Family):
    name = "torchvision"

    def owns(self, name: str) -> bool:
        return name in torchvision_classifiers()

    def names(self, all_models: bool = False) -> list[str]:
        if not all_models:
            return list(FEATURED_TORCHVISION)
        return FEATURED_TORCHVISION + [n for n in torchvision_classifiers() if n not in FEATURED_TORCHVISION]

    def more_names(self) -> str:
        return (f"Other torchvision classifiers also work by name ({len(torchvision_classifiers())} in all; "
                "`tlbench backbones --all` lists them)")

    def spec(self, name: str) -> BackboneSpec:
        # every weights enum has a DEFAULT member; the WeightsEnum base class the stubs return does not declare it
        weights = torchvision.models.get_model_weights(name).DEFAULT  # pyright: ignore[reportAttributeAccessIssue]
        kw = getattr(weights.transforms, "keywords", {})
        crop = int(kw.get("crop_size", 224))
        interp = kw.get("interpolation")
        meta = weights.meta
        top1 = meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        # torchvision records the file size in MiB
        size_mib = meta.get("_file_size")
        return BackboneSpec(
            name, self.name, crop, int(kw.get("resize_size", 256)),
            interpolation=interp.value if interp is not None else "bilinear",
            mean=tuple(kw.get("mean", IMAGENET_MEAN)), std=tuple(kw.get("std", IMAGENET_STD)),
            top1=top1, params=meta.get("num_params"), tv_weights=str(weights), featured=name in FEATURED_TORCHVISION,
            weights_bytes=int(size_mib * 2**20) if size_mib else None,
            min_input=max(32, int(meta.get("min_size", (32, 32))[0])),
            fixed_input=name.startswith(FIXED_INPUT_FAMILIES),
        )

    def build(self, spec: BackboneSpec) -> nn.Module:
        return torchvision.models.get_model(spec.name, weights=None, **architecture_kwargs(spec))

    def feature_width(self, model: nn.Module) -> int:
        conv = _conv_classifier(model)
        return conv.in_channels if conv is not None else super().feature_width(model)

    def split_head(self, model: nn.Module, spec: BackboneSpec) -> tuple[nn.Module, nn.Module | None]:
        """SqueezeNet classifies with a convolution before pooling, which no Linear on pooled features equals:
        its classifier becomes global average pooling (SqueezeNet.forward flattens), and no ImageNet head is
        returned. Every other torchvision classifier ends in its nn.Linear."""
        if _conv_classifier(model) is not None:
            model.classifier = nn.AdaptiveAvgPool2d((1, 1))
            return model, None
        return super().split_head(model, spec)

    def weights_status(self, spec: BackboneSpec) -> WeightsStatus:
        return hub_file_status(torchvision_weights(spec).url, spec.weights_bytes)

    def pretrained_identity(self, spec: BackboneSpec) -> str:
        return f"torchvision:{spec.tv_weights}:{torchvision_weights_file(spec).name}"

    def load_pretrained(self, spec: BackboneSpec, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
        """torchvision's `get_model(name, weights=...)` on the file in the hub cache (downloaded once)."""
        tv = torchvision_weights(spec)
        path = ensure_hub_file(spec.name, tv.url, spec.weights_bytes, ctx)
        read_state_dict(path, mmap=True)  # refuses pickled code before torchvision unpickles the file in full
        try:
            model = without_aux_heads(torchvision.models.get_model(spec.name, weights=tv))
        except RuntimeError as err:  # load_state_dict(strict=True) inside the builder
            first = str(err).strip().splitlines()[0]
            raise WeightsError(
                f"The weights in {path} do not fit {spec.name} ({first}). The file is not torchvision's "
                f"{path.name}: delete it to download it again, or copy the right file there."
            ) from None
        return model, self.pretrained_identity(spec)

    def load_file(self, spec: BackboneSpec, path: Path, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
        if spec.name not in ("googlenet", "inception_v3"):
            return super().load_file(spec, path, ctx)
        # tlbench's Inception and GoogLeNet have no auxiliary heads (without_aux_heads): a state dict saved from
        # torchvision's pretrained model loads without them
        identity = file_identity(path)
        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(AUX_HEADS)}
        model = self.build(spec)
        load_into(model, state, str(path), spec.name)
        return model, identity
