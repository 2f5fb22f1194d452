"""Feature extraction under torchrun: each rank extracts its shard, every rank gets all the features, rank 0
alone writes the cache; the features (and a head trained on them) equal one process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers.data import ROOT, make_dataset

from engine.core.records import Preprocessing
from engine.features.cache import cache_key, cached_features

# The job each rank runs: join the gloo group, extract through the feature cache with the test's tiny model
# (counting what this rank extracted), save what it got.
JOB = """
import json, os, sys
if os.environ.get("NODE_CACHES"):  # a cache per rank, as on nodes that each have their own disk
    os.environ["TLBENCH_CACHE"] = os.path.join(os.environ["NODE_CACHES"], "rank" + os.environ["RANK"])
sys.path[:0] = [{root!r}, {root!r} + "/tests", {tests!r}]
import torch
import engine.features.cache as features
from engine.runtime import distributed as D
from test_features_sharded import PREP, tiny_model, paths_of

info = D.setup("cpu")
seen = []
real = features.extract
features.extract = lambda model, paths, *a, **k: seen.extend(paths) or real(model, paths, *a, **k)
root = sys.argv[1]
feats, errors, stats = features.cached_features(tiny_model, features.cache_key("tiny", "random:seed=0", PREP),
                                                root, paths_of(root), torch.device("cpu"), 2, 0)
torch.save({{"feats": feats, "errors": errors, "stats": stats, "seen": seen}}, f"{{sys.argv[2]}}/rank{{info.rank}}.pt")
D.teardown(info)
"""

PREP = Preprocessing(32, 32, "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def tiny_model():
    from torch import nn

    from engine.models.classifier import Classifier

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(backbone, nn.Linear(8, 2), list(PREP.mean), list(PREP.std))


def paths_of(root):
    from pathlib import Path

    return sorted(str(p) for p in Path(root).glob("*/*.png")) + [str(Path(root) / "broken.png")]


def test_two_ranks_extract_a_shard_each_and_match_one_process(tmp_path):
    data = make_dataset(tmp_path / "d", {"red": 5, "blue": 4})
    (data / "broken.png").write_bytes(b"no image")  # 10 files, one unusable
    script = tmp_path / "job.py"
    script.write_text(JOB.format(root=str(ROOT), tests=str(Path(__file__).resolve().parent)))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "TLBENCH_CACHE": str(tmp_path / "ddp-cache"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(data), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    paths = paths_of(data)
    one, one_errors, one_stats = cached_features(tiny_model, cache_key("tiny", "random:seed=0", PREP), data, paths,
                                                 torch.device("cpu"), 2, 0)
    # each rank extracted its own half, together every file once
    assert sorted(ranks[0]["seen"] + ranks[1]["seen"]) == sorted(paths)
    assert set(ranks[0]["seen"]).isdisjoint(ranks[1]["seen"]) and all(r["seen"] for r in ranks)
    for r in ranks:  # every rank holds all the features, as one process computed them
        assert torch.allclose(r["feats"], one, atol=1e-5) and r["errors"] == one_errors
        assert r["stats"]["extracted"] == one_stats["extracted"] == 9
    assert list(one_errors) == [9]
    # rank 0 wrote one cache file, and it holds every usable file's features
    cached = list((tmp_path / "ddp-cache" / "features").glob("*/*.pt"))
    assert len(cached) == 1 and len(torch.load(cached[0], weights_only=True)["ids"]) == 9


def test_a_warm_rank_and_a_cold_rank_extract_the_same_list(tmp_path):
    """Node-local caches: rank 1's holds every feature, rank 0's none. Rank 0's view of the cache decides what
    is missing for all (rank 1 used to find nothing missing and skip the gather rank 0 waited in)."""
    data = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    paths = paths_of(data)[:-1]  # the usable files
    (tmp_path / "d" / "broken.png").write_bytes(b"no image")
    script = tmp_path / "job.py"
    script.write_text(JOB.format(root=str(ROOT), tests=str(Path(__file__).resolve().parent)))
    caches = tmp_path / "nodes"
    old = os.environ.get("TLBENCH_CACHE")
    os.environ["TLBENCH_CACHE"] = str(caches / "rank1")
    try:  # warm rank 1's cache
        one, _, _ = cached_features(tiny_model, cache_key("tiny", "random:seed=0", PREP), data, paths,
                                    torch.device("cpu"), 2, 0)
    finally:
        os.environ["TLBENCH_CACHE"] = old or ""
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "NODE_CACHES": str(caches), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(data), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    # rank 0's cache was cold: both ranks extracted their shard of every file, and agree
    assert sorted(ranks[0]["seen"] + ranks[1]["seen"]) == sorted(paths_of(data))
    for r in ranks:
        assert torch.allclose(r["feats"][:len(paths)], one, atol=1e-5)
