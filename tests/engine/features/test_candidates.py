"""A candidate's features come from the probe's feature cache, backbone by backbone, side by side."""

import pytest
import torch
from helpers.data import make_dataset

from engine.core.errors import ConfigError
from engine.data.scan import scan_dataset
from engine.features.candidates import candidate_features, candidate_parts
from engine.models.registry import feature_dim


def test_a_concatenation_is_each_backbones_cached_features_side_by_side(tmp_path):
    root = make_dataset(tmp_path / "colours", {"red": 3, "blue": 3})
    paths = [s.path for s in scan_dataset(str(root)).samples]
    cpu = torch.device("cpu")
    kw = dict(img_size=32, weights="random", seed=1, workers=0)
    a, err, cold = candidate_features("efficientnet_lite0", str(root), paths, cpu, **kw)
    assert not err and cold["feature_cache"] == "miss" and a.shape == (6, feature_dim("efficientnet_lite0"))
    both, _, stats = candidate_features("efficientnet_lite0+mobilenet_v3_small", str(root), paths, cpu, **kw)
    assert both.shape == (6, feature_dim("efficientnet_lite0") + feature_dim("mobilenet_v3_small"))
    assert torch.equal(both[:, :a.shape[1]], a)  # lite0's part is the cached block, in order
    assert stats["backbones"]["efficientnet_lite0"]["feature_cache"] == "hit"
    assert stats["feature_cache"] == "miss"  # mobilenet's part was new
    _, _, warm = candidate_features("efficientnet_lite0+mobilenet_v3_small", str(root), paths, cpu, **kw)
    assert warm["feature_cache"] == "hit"


def test_a_bad_candidate_names_the_part():
    assert candidate_parts("efficientnet_lite0 + resnet18") == ["efficientnet_lite0", "resnet18"]
    with pytest.raises(ConfigError, match="nosuchnet"):
        candidate_parts("efficientnet_lite0+nosuchnet")
    with pytest.raises(ConfigError, match="empty name"):
        candidate_parts("efficientnet_lite0+")
