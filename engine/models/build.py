"""Building models from the registry: an ImageNet model with its weights, a Classifier with a new head, and
the registry row the CLI and the workbench show. Each step asks the backbone's family (engine.models.family)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from torch import nn

from engine.core.errors import ConfigError
from engine.models.classifier import Classifier
from engine.models.registry import (
    FAMILIES,
    build_architecture,
    feature_dim,
    get_spec,
    param_count,
    weights_status,
)
from engine.models.weights import is_random, random_identity, weights_path

if TYPE_CHECKING:
    from engine.core.jobs import JobContext


def backbone_info(name: str) -> dict:
    """One registry row: size, input, preprocessing, ImageNet top-1, feature width and weights status.

    `tlbench backbones` prints these rows and the workbench's Model screen shows them.
    """
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
        "weights_bytes": status.bytes,
        "min_input": spec.min_input,
        "fixed_input": spec.fixed_input,
        "input_note": spec.extra.get("input"),  # timm: whether (and why) it takes any input size
    }


def backbone_row(name: str) -> dict:
    """backbone_info, or for a model that cannot be described here (an architecture this timm cannot build on
    the meta device) a row that says why: one odd name must not sink a search listing."""
    try:
        return backbone_info(name)
    except Exception as err:  # noqa: BLE001 - shown in its row
        family = next((f.name for f in FAMILIES.values() if f.owns(name)), "?")
        return {"name": name, "family": family, "params": None,
                "input_size": None, "feature_dim": None, "imagenet_top1": None, "weights": "missing",
                "weights_bytes": None, "weights_detail": f"{type(err).__name__}: {err}", "error": str(err)}


def build_imagenet_model(
    name: str,
    weights: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
    seed: int | None = None,
) -> tuple[nn.Module, str]:
    """The 1,000-class ImageNet model with pretrained weights; returns (model, weights identity).

    `weights`: None = the family's pretrained weights (shipped -> cache -> download -> clear error);
    "random" = no pretrained weights, initialised from `seed` (the identity names the seed);
    a path = a local state dict, loaded with weights_only=True.
    """
    spec = get_spec(name)
    if is_random(weights):
        return build_architecture(spec, seed), random_identity(seed)
    family = FAMILIES[spec.family]
    if weights is None:
        return family.load_pretrained(spec, ctx)
    return family.load_file(spec, weights_path(weights), ctx)


def build_classifier(
    name: str,
    num_classes: int | None,
    weights: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
    seed: int | None = None,
) -> tuple[Classifier, str]:
    """A Classifier: the pretrained backbone with its ImageNet head swapped for a new one.

    With num_classes=None the ImageNet head is kept (attacks and dreams against the raw backbone).
    """
    spec = get_spec(name)
    family = FAMILIES[spec.family]
    if num_classes is not None and num_classes < 2:
        raise ConfigError(f"A classifier needs at least 2 classes, got {num_classes}.")
    if num_classes is None:
        family.check_imagenet_head(spec)  # before loading anything
    model, identity = build_imagenet_model(name, weights, ctx, seed)
    width = family.feature_width(model)
    backbone, imagenet_head = family.split_head(model, spec)
    if num_classes is None:
        if imagenet_head is None:
            raise ConfigError(
                f"{name}'s ImageNet classifier is a convolution applied before pooling, so it cannot sit on "
                "pooled features as a separate head: attack or dream a run trained on it, or use another backbone."
            )
        head = imagenet_head
    else:
        head = nn.Linear(width, num_classes)
    return Classifier(backbone, head, spec.mean, spec.std), identity
