"""`compare`: candidates ranked by cross-validated accuracy with its std, their speed, a failing candidate in its
own row, and a warm rerun that extracts, builds and times nothing."""

import shutil

import numpy as np
import pytest
import torch
from device_discipline import DeviceDiscipline
from helpers.data import DEMO
from PIL import Image

from engine.core.events import CandidateScored
from engine.core.jobs import JobContext, JobControl
from engine.evaluate.plots import pareto_front, tradeoff_png
from engine.features.compare import compare, mark_pareto
from engine.models.registry import feature_dim, param_count


def demo_subset(dest, classes=("0", "1", "7"), per_class=6):
    """A few of the bundled digits (8x8 PNGs), copied: a small dataset of real images."""
    for c in classes:
        for src in sorted((DEMO / c).glob("*.png"))[:per_class]:
            (dest / c).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / c / src.name)
    return dest


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def scored(self):
        return [e for e in self.events if isinstance(e, CandidateScored)]


@pytest.fixture
def quick(monkeypatch):
    """One torch thread (on a shared, loaded 2-core machine two threads wait on each other: ~10x slower here)
    and a short timing budget: the test checks what is measured and cached, not the numbers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr("engine.evaluate.speed.BUDGET_S", 0.2)
    yield
    torch.set_num_threads(threads)


def run(data, backbones, sink):
    return compare(str(data), backbones, JobContext(sink, JobControl()), folds=3, img_size=32, batch_size=8,
                   workers=0)


def test_compare_ranks_with_std_reports_a_missing_backbone_in_its_row_and_reruns_from_the_caches(
        tmp_path, monkeypatch, quick):
    data = demo_subset(tmp_path / "digits")
    cold_events = Recorder()
    # resnet18: torchvision weights, not in this test's empty TORCH_HOME, and TLBENCH_OFFLINE=1 (conftest)
    names = ("efficientnet_lite0", "resnet18", "efficientnet_lite1")
    for name in names:  # the registry's meta-device builds (cached) trip the discipline's frame check: before it
        feature_dim(name), param_count(name)
    with DeviceDiscipline() as d:  # every tensor the job makes names its device; no float64
        cold = run(data, ",".join(names), cold_events)
    d.check()

    assert cold["folds"] == 3 and cold["dataset"] == str(data)
    rows = cold["results"]
    ok = [r for r in rows if r["error"] is None]
    assert [r["backbone"] for r in ok] != [] and len(ok) == 2
    assert [r["accuracy"] for r in ok] == sorted((r["accuracy"] for r in ok), reverse=True)  # best first
    assert cold["best"] == rows[0]["backbone"] and rows[0]["error"] is None
    for r in ok:
        assert r["accuracy_std"] == pytest.approx(np.std(r["fold_accuracies"]), abs=1e-6)
        assert len(r["fold_accuracies"]) == 3 and 0 <= r["accuracy"] <= 1 and r["top5"] >= r["accuracy"]
        assert r["images_per_s"] > 0 and r["latency_ms"] > 0 and r["weights"] == "shipped"
        assert r["feature_cache"] == "miss" and r["speed_cache"] == "miss"
    failed = rows[-1]  # the failure goes last, the others completed around it
    assert failed["backbone"] == "resnet18" and failed["accuracy"] is None and failed["weights"] == "missing"
    assert "resnet18" in failed["error"] and "torch hub cache" in failed["error"]
    assert failed["params"] > 0 and failed["feature_dim"] == 512  # what is known without weights is there
    # one event per candidate, in the order given, as each finished: a leaderboard fills row by row
    assert [(e.index, e.row["backbone"]) for e in cold_events.scored()] == [
        (1, "efficientnet_lite0"), (2, "resnet18"), (3, "efficientnet_lite1")]
    run_dir = tmp_path.parent / cold["run_dir"]
    assert (run_dir / "compare.json").is_file() and Image.open(run_dir / "tradeoff.png").size == (720, 440)
    assert run_dir.name.endswith("-digits-compare")

    # warm: the parts' features and speeds are cached; a concatenation of them is free too
    def refuse(*args, **kwargs):
        raise AssertionError("a warm compare built, ran or timed a backbone")

    monkeypatch.setattr("engine.features.candidates.build_classifier", refuse)
    monkeypatch.setattr("engine.features.cache.extract", refuse)
    monkeypatch.setattr("engine.evaluate.speed.measure_speed", refuse)
    warm = run(data, "efficientnet_lite0,efficientnet_lite1,efficientnet_lite0+efficientnet_lite1", Recorder())
    assert [r["error"] for r in warm["results"]] == [None] * 3
    assert all(r["feature_cache"] == "hit" and r["speed_cache"] == "hit" for r in warm["results"])
    assert warm["feature_cache"] == "hit"
    before = {r["backbone"]: r for r in ok}
    for r in warm["results"]:
        if r["backbone"] in before:  # same features, same folds: the same numbers
            assert r["accuracy"] == before[r["backbone"]]["accuracy"]
            assert r["images_per_s"] == before[r["backbone"]]["images_per_s"]
    both = next(r for r in warm["results"] if "+" in r["backbone"])
    lite0, lite1 = before["efficientnet_lite0"], before["efficientnet_lite1"]
    assert both["feature_dim"] == lite0["feature_dim"] + lite1["feature_dim"]
    assert both["latency_ms"] == pytest.approx(lite0["latency_ms"] + lite1["latency_ms"], abs=1e-2)
    assert both["images_per_s"] < min(lite0["images_per_s"], lite1["images_per_s"])


def test_the_pareto_front_is_what_nothing_beats_on_both_speed_and_accuracy(tmp_path):
    #          (images/s, accuracy)
    points = [(100, 0.80),   # fastest: on the front
              (50, 0.90),    # on the front
              (40, 0.85),    # beaten by (50, 0.90): slower and worse
              (10, 0.95),    # most accurate: on the front
              (10, 0.95),    # its equal: on the front too
              (100, 0.70)]   # as fast as the first, worse: off
    assert pareto_front(points) == [True, True, False, True, True, False]
    rows = [{"backbone": f"b{i}", "images_per_s": s, "accuracy": a, "accuracy_std": 0.01}
            for i, (s, a) in enumerate(points)] + [{"backbone": "failed", "images_per_s": None, "accuracy": None,
                                                     "error": "no weights"}]
    mark_pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, True, True, False, False]
    tradeoff_png(rows, tmp_path / "t.png", "test")
    pixels = np.asarray(Image.open(tmp_path / "t.png").convert("RGB")).reshape(-1, 3)
    red = ((pixels[:, 0] == 200) & (pixels[:, 1] == 40) & (pixels[:, 2] == 40)).sum()
    blue = ((pixels[:, 0] == 30) & (pixels[:, 1] == 90) & (pixels[:, 2] == 200)).sum()
    assert red > 100 and blue > 20  # the front drawn in red, the others in blue


def test_a_small_cross_validation_solves_on_one_thread_and_gives_the_threads_back(monkeypatch):
    """Tiny ops split over threads wait on each other on a busy machine (5 folds of 240 x 1280: 13 s on 2
    threads, 0.6 s on 1, measured here); the caller's thread count is restored afterwards."""
    import torch.nn.functional as F

    from engine.evaluate.crossval import cross_validate, stratified_folds

    seen = []
    real = F.cross_entropy

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        y = torch.arange(3).repeat(8)
        x = torch.nn.functional.one_hot(y, 3).float() + 0.1 * torch.arange(24.0)[:, None]
        result = cross_validate(x, y, 3, stratified_folds(y, 2, seed=0))
        assert result.accuracy == 1.0 and seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
