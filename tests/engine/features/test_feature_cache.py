"""The feature cache: what its key holds (so stale features are never served), what it prunes (so it never
grows without bound), and that a hit builds no backbone."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torchvision
from helpers.data import make_dataset, write_image
from torch import nn

from engine.core.paths import cache_dir
from engine.core.records import Preprocessing
from engine.features.cache import FeatureCache, cache_key, cached_features
from engine.models.classifier import Classifier

PREP = Preprocessing(32, 37, "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


class Factory:
    """A tiny model factory that counts how often it was asked to build (each build = a backbone load)."""

    def __init__(self):
        self.builds = 0

    def __call__(self) -> Classifier:
        self.builds += 1
        torch.manual_seed(0)
        backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return Classifier(backbone, nn.Linear(8, 2), list(PREP.mean), list(PREP.std))


@pytest.fixture
def images(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    return root, sorted(str(p) for p in root.rglob("*.png"))


def features(images, factory, identity="random:seed=1", prep=PREP):
    root, paths = images
    return cached_features(factory, cache_key("tiny", identity, prep), root, paths, torch.device("cpu"),
                           batch_size=4, workers=0)


def test_a_hit_builds_no_backbone_and_returns_the_same_features(images):
    first = features(images, Factory())
    factory = Factory()
    second = features(images, factory)
    assert first[2]["feature_cache"] == "miss" and second[2]["feature_cache"] == "hit"
    assert factory.builds == 0 and torch.equal(first[0], second[0])


@pytest.mark.parametrize("change", ["image size", "weights", "torchvision version", "torch version",
                                    "Pillow version"])
def test_a_change_of_what_features_depend_on_misses(images, change, monkeypatch):
    features(images, Factory())
    identity, prep = "random:seed=1", PREP
    if change == "image size":
        prep = replace(PREP, crop_size=40, resize_size=46)
    elif change == "weights":
        identity = "random:seed=2"
    elif change == "torchvision version":
        monkeypatch.setattr(torchvision, "__version__", "0.0.1+other")
    elif change == "torch version":
        monkeypatch.setattr(torch, "__version__", "0.0.1+other")
    else:
        import PIL

        monkeypatch.setattr(PIL, "__version__", "0.0.1")
    factory = Factory()
    _, _, stats = features(images, factory, identity, prep)
    assert stats["feature_cache"] == "miss" and factory.builds == 1


def test_an_edit_of_the_feature_code_misses(images, tmp_path, monkeypatch):
    """The key holds a hash of the files that turn an image into features; editing one misses."""
    for name in FeatureCache.CODE_FILES:  # every file the hash claims to cover exists (a rename would drop it)
        assert (FeatureCache.CODE_DIR / name).is_file(), name
    assert {"data/loaders.py", "features/cache.py", "data/images.py", "models/classifier.py"} <= set(
        FeatureCache.CODE_FILES)
    copy = tmp_path / "code"
    for name in FeatureCache.CODE_FILES:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FeatureCache.CODE_DIR / name, copy / name)
    real = FeatureCache.code_hash()
    monkeypatch.setattr(FeatureCache, "CODE_DIR", copy)
    assert FeatureCache.code_hash() == real  # the hash is the files' contents, nothing else
    features(images, Factory())
    with open(copy / "data" / "loaders.py", "a") as f:
        f.write("\n# resize differently\n")
    factory = Factory()
    assert features(images, factory)[2]["feature_cache"] == "miss" and factory.builds == 1


def stored_ids(images, identity="random:seed=1") -> list[str]:
    root, _ = images
    path = FeatureCache(cache_key("tiny", identity, PREP), root).path
    return torch.load(path, weights_only=True)["ids"]


def test_entries_of_deleted_or_changed_files_are_dropped_when_the_file_is_rewritten(images):
    root, paths = images
    features(images, Factory())
    gone, changed, kept = paths[0], paths[1], paths[2:]
    before = stored_ids(images)
    assert len(before) == 6
    os.unlink(gone)
    write_image(Path(changed), (10, 250, 10), size=33)  # same path, new content
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    cached_features(Factory(), cache_key("tiny", "random:seed=1", PREP), root, [changed], torch.device("cpu"),
                    workers=0)  # a rewrite that only needed the changed file
    after = stored_ids(images)
    assert not any(i.startswith(gone + "|") for i in after)  # the deleted file's entry is gone
    assert [i for i in after if i.startswith(changed + "|")] == [i for i in after if i not in before]  # new only
    assert all(any(i.startswith(p + "|") for i in after) for p in kept)  # still-valid entries stay


def test_cache_files_unused_for_a_month_are_deleted(images):
    features(images, Factory(), identity="random:seed=1")
    old = FeatureCache(cache_key("tiny", "random:seed=1", PREP), images[0]).path
    month = time.time() - 31 * 86400
    os.utime(old, (month, month))
    features(images, Factory(), identity="random:seed=2")  # a write prunes
    assert not old.exists() and not old.parent.exists()
    assert len(list((cache_dir() / "features").glob("*/*.pt"))) == 1


def test_least_recently_used_cache_files_go_beyond_the_size_cap(images, monkeypatch):
    for seed in (1, 2, 3):
        features(images, Factory(), identity=f"random:seed={seed}")
        path = FeatureCache(cache_key("tiny", f"random:seed={seed}", PREP), images[0]).path
        os.utime(path, (time.time() - 100 + seed, time.time() - 100 + seed))  # 1 used longest ago
    size = path.stat().st_size
    features(images, Factory(), identity="random:seed=1")  # a hit: marks 1 as just used
    monkeypatch.setenv("TLBENCH_FEATURE_CACHE_MB", str(2.5 * size / 1e6))  # room for two files
    features(images, Factory(), identity="random:seed=4")  # a write: 4 kept, then 1 (used last); 2 and 3 go
    left = {FeatureCache(cache_key("tiny", f"random:seed={s}", PREP), images[0]).path.exists() for s in (2, 3)}
    assert left == {False}
    assert all(FeatureCache(cache_key("tiny", f"random:seed={s}", PREP), images[0]).path.exists() for s in (1, 4))
