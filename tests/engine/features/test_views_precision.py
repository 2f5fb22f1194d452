"""The mirror view (test-time augmentation) and the augmented crops are extracted in the precision asked for,
like the center view, and cached under that precision (issue 22: the TTA view ignored --precision)."""

from __future__ import annotations

import torch
from helpers.data import make_dataset

from engine.data.images import image_identity
from engine.features.cache import FeatureCache
from engine.features.views import view_features, view_key
from engine.models.registry import get_spec, weights_identity

BACKBONE = "squeezenet1_1"


def test_every_view_is_extracted_and_cached_in_the_precision_asked(tmp_path):
    root = make_dataset(tmp_path / "data", {"red": 3, "blue": 3}, size=40)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    cache = str(tmp_path / "cache")
    views = ["center", "flip", "crop0"]
    feats, errors, used = view_features(BACKBONE, 32, views, cache, paths, torch.device("cpu"), weights="random",
                                        workers=0, precision="bf16")
    assert used == "bf16" and not errors and feats.shape[:2] == (len(paths), len(views))
    spec = get_spec(BACKBONE)
    prep, identity = spec.preprocessing(32), weights_identity(spec, "random", seed=0)
    ids = {image_identity(p) for p in paths}
    for view in views:
        assert ids <= set(FeatureCache(view_key(BACKBONE, identity, prep, view, "bf16"), cache).load()), view
        assert not FeatureCache(view_key(BACKBONE, identity, prep, view, "fp32"), cache).load(), view
    fp32, _, _ = view_features(BACKBONE, 32, views, cache, paths, torch.device("cpu"), weights="random", workers=0,
                               precision="fp32")
    # bf16 rounding shows in every view, the mirror view's included
    for v in range(len(views)):
        assert not torch.equal(fp32[:, v], feats[:, v]), views[v]
        assert torch.allclose(fp32[:, v], feats[:, v].float(), rtol=0.1, atol=0.1), views[v]
