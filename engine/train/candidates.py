"""Features of a candidate for cross-validation: one backbone, or a concatenation `a+b` of several.

`compare`, `train --mode auto` and `audit` score candidates on frozen features; each backbone's features come
from the same cache the probe uses (engine.train.features), so a backbone extracted once for any of them is
free for the others, and a warm rerun does no forward pass at all.
"""

from __future__ import annotations

import torch

from engine.core.errors import ConfigError
from engine.core.jobs import JobContext
from engine.core.records import Preprocessing
from engine.models.build import build_classifier
from engine.models.registry import get_spec
from engine.models.weights import weights_identity
from engine.train.features import cache_key, cached_features


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
) -> tuple[torch.Tensor, dict[int, str], dict]:
    """One backbone's pooled features for `paths` through the feature cache -> (features [N, D] on the CPU,
    {index: reason} for unusable files, stats). The backbone is built (and its weights loaded) only on a miss."""
    spec = get_spec(name)
    prep = prep or spec.preprocessing()
    key = cache_key(name, weights_identity(spec, weights, seed=seed), prep)

    def model():
        return build_classifier(name, 2, weights, ctx, seed)[0]  # the head is unused: features only

    return cached_features(model, key, root, paths, device, batch_size, workers, ctx)


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
) -> tuple[torch.Tensor, dict[int, str], dict]:
    """A candidate's features: its backbones' features side by side ([N, sum of D]). A file unusable for any
    backbone is unusable for the candidate. stats: {"backbones": {name: that backbone's stats}, "feature_cache":
    "hit" only when every part was a hit}."""
    feats, errors, per = [], {}, {}
    for name in candidate_parts(candidate):
        prep = get_spec(name).preprocessing(img_size) if img_size else None
        f, err, stats = backbone_features(name, root, paths, device, prep=prep, weights=weights, seed=seed,
                                          batch_size=batch_size, workers=workers, ctx=ctx)
        feats.append(f)
        errors.update(err)
        per[name] = stats
    hit = all(s["feature_cache"] == "hit" for s in per.values())
    return torch.cat(feats, 1), errors, {"backbones": per, "feature_cache": "hit" if hit else "miss"}
