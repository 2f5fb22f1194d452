"""Features of a candidate for cross-validation: one backbone, or a concatenation `a+b` of several.

`compare`, `train --mode auto` and `audit` score candidates on frozen features; each backbone's features come
from the same cache the probe uses (engine.features.cache), so a backbone extracted once for any of them is
free for the others, and a warm rerun does no forward pass at all.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.core.errors import ConfigError
from engine.core.jobs import JobContext
from engine.core.records import Preprocessing
from engine.features.cache import cache_key, cached_features
from engine.models.build import build_classifier
from engine.models.classifier import Classifier
from engine.models.registry import get_spec, weights_identity
from engine.models.spec import resolve_img_size


def candidate_parts(candidate: str) -> list[str]:
    """"a+b" -> ["a", "b"], each a known backbone (a ConfigError names the unknown one)."""
    parts = [p.strip() for p in candidate.split("+")]
    if not all(parts):
        raise ConfigError(f"Backbone candidate {candidate!r}: an empty name around '+'. "
                          "Write a concatenation as efficientnet_lite0+efficientnet_lite1.")
    for p in parts:
        get_spec(p)
    return parts


def backbone_features(
    name: str,
    root: str,
    paths: list[str],
    device: torch.device,
    *,
    prep: Preprocessing | None = None,
    weights: str | None = None,
    seed: int = 0,
    batch_size: int = 64,
    workers: int | None = None,
    ctx: JobContext | None = None,
    model: Callable[[], Classifier] | None = None,
) -> tuple[torch.Tensor, dict[int, str], dict]:
    """One backbone's pooled features for `paths` through the feature cache -> (features [N, D] on the CPU,
    {index: reason} for unusable files, stats). The backbone is built (and its weights loaded) only on a miss,
    by `model` when given (a caller that reuses the built network, e.g. to time it), else here."""
    spec = get_spec(name)
    prep = prep or spec.preprocessing()
    key = cache_key(name, weights_identity(spec, weights, seed=seed), prep)
    return cached_features(model or (lambda: build_backbone(name, weights, seed, ctx)), key, root, paths, device,
                           batch_size, workers, ctx)


def build_backbone(name: str, weights: str | None = None, seed: int = 0, ctx: JobContext | None = None) -> Classifier:
    """The backbone as a Classifier for its features (the 2-class head is never used)."""
    return build_classifier(name, 2, weights, ctx, seed)[0]


def part_img_size(name: str, img_size: int | None, median_side: int | None) -> int:
    """The input size a part gets: as asked, else what the probe would choose for this dataset (so a compare
    and a probe on the same data share their cached features)."""
    spec = get_spec(name)
    return resolve_img_size(img_size, spec.input_size, median_side, spec.min_input, spec.fixed_input)


def candidate_features(
    candidate: str,
    root: str,
    paths: list[str],
    device: torch.device,
    *,
    img_size: int | None = None,
    weights: str | None = None,
    seed: int = 0,
    batch_size: int = 64,
    workers: int | None = None,
    ctx: JobContext | None = None,
    median_side: int | None = None,
    models: dict[str, Classifier] | None = None,
) -> tuple[torch.Tensor, dict[int, str], dict]:
    """A candidate's features: its backbones' features side by side ([N, sum of D]). A file unusable for any
    backbone is unusable for the candidate. stats: {"backbones": {name: that backbone's stats}, "feature_cache":
    "hit" only when every part was a hit}.

    Each part's input size is `img_size`, else (given the dataset's `median_side`) the probe's choice for the
    dataset, else the backbone's own. `models`, when given, keeps each backbone built on a miss, by name, for
    the caller (compare times the same network; a hit builds none and adds nothing)."""
    feats, errors, per = [], {}, {}
    for name in candidate_parts(candidate):
        size = part_img_size(name, img_size, median_side) if (img_size or median_side) else None
        prep = get_spec(name).preprocessing(size) if size else None

        def model(name=name) -> Classifier:
            if models is None:
                return build_backbone(name, weights, seed, ctx)
            if name not in models:
                models[name] = build_backbone(name, weights, seed, ctx)
            return models[name]

        f, err, stats = backbone_features(name, root, paths, device, prep=prep, weights=weights, seed=seed,
                                          batch_size=batch_size, workers=workers, ctx=ctx, model=model)
        feats.append(f)
        errors.update(err)
        per[name] = stats
    hit = all(s["feature_cache"] == "hit" for s in per.values())
    return torch.cat(feats, 1), errors, {"backbones": per, "feature_cache": "hit" if hit else "miss"}
