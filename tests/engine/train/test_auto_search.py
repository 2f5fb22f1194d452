"""auto's search on stand-in features (no backbone runs: each (backbone, size, view) gets fixed synthetic features):
the budget buys the larger space, repeated CV is the same for a seed, a gain within the noise is not kept, and
the default probe is always scored, with auto's estimate never below it."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.train.auto.ensemble as ensemble
import engine.train.auto.recipes as recipes
import engine.train.auto.search as search_module
from engine.core.jobs import JobContext, JobControl
from engine.data.layouts import Sample
from engine.evaluate.crossval import CVResult, paired_gain
from engine.train.auto.run import leaderboard, run_search
from engine.train.auto.search import REPEATS, Scored, Search
from engine.train.config import TrainConfig

CLASSES, PER_CLASS, DIM = 3, 8, 12
LITES = ("efficientnet_lite0", "efficientnet_lite1")


def samples(root: Path) -> list[Sample]:
    return [Sample(str(root / f"c{c}" / f"{i}.png"), c) for c in range(CLASSES) for i in range(PER_CLASS)]


def signal(backbone: str) -> float:
    return {"efficientnet_lite0": 1.2, "efficientnet_lite1": 0.9}.get(backbone, 0.0)


def stand_in_features(backbone, img_size, views, root, paths, device, **kw):
    """Class centroids plus noise, fixed by (backbone, size, view, image): a stronger signal for Lite0."""
    labels = torch.tensor([int(Path(p).parent.name[1:]) for p in paths])
    out = []
    for view in views:
        seed = int(hashlib.sha256(f"{backbone}|{img_size}|{view}".encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)
        centroids = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(7))
        out.append(signal(backbone) * centroids[labels] + torch.randn(len(paths), DIM, generator=g))
    return torch.stack(out, 1), {}, "fp32"


@pytest.fixture
def stand_ins(monkeypatch):
    monkeypatch.setattr(search_module, "view_features", stand_in_features)
    monkeypatch.setattr(search_module, "missing_count",
                        lambda backbone, size, views, root, paths, *a, **k: len(paths) * len(views))
    monkeypatch.setattr(recipes, "available_backbones", lambda: list(LITES))
    monkeypatch.setattr(recipes, "L2_GRID", (1e-2,))
    monkeypatch.setattr(recipes, "AUG_VIEWS", 1)


class Clock:
    """A clock the test moves: `step` seconds pass at every reading."""

    def __init__(self, step: float = 0.0):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def search_for(tmp_path: Path, clock=None, budget: float = 15.0, seed: int = 0, **kw) -> Search:
    config = TrainConfig(dataset=str(tmp_path), mode="auto", img_size=32, folds=3, budget=budget, seed=seed,
                         workers=0, **kw).validate()
    return Search(config, samples(tmp_path), str(tmp_path), CLASSES, JobContext(lambda e: None, JobControl()),
                  torch.device("cpu"), clock=clock or Clock(), precision="fp32")


def searched(tmp_path: Path, clock=None, budget: float = 15.0, seed: int = 0, **kw) -> tuple[Search, dict]:
    s = search_for(tmp_path, clock, budget, seed, **kw)
    winner = run_search(s, s.config, None)
    return s, leaderboard(s, winner, s.config, len(s.paths), 0)


def test_time_left_buys_the_larger_space_and_a_short_budget_lists_what_it_left_out(tmp_path, stand_ins):
    s, board = searched(tmp_path)  # the clock never moves: every candidate fits
    scored = [e for e in board["leaderboard"] if "cv_accuracy" in e]
    stages = {e["stage"] for e in scored}
    assert {"default probe", "backbones", "flip", "concat", "head", "views"} <= stages, stages
    ensembled = next(e for e in board["leaderboard"] if e["stage"] == "ensemble")  # scored, or one recipe chosen
    assert "cv_accuracy" in ensembled or ensembled["skipped"].startswith("the selection kept one recipe")
    settings = [e["settings"] for e in scored if e["stage"] != "ensemble"]
    assert {st["tta"] for st in settings} == {"none", "flip", "ten-crop"}
    assert any(len(st["backbones"]) == 2 for st in settings) and any(st["aug_views"] for st in settings)
    assert any(e["stage"] == "fine-tuning" for e in board["leaderboard"])  # estimated, listed with its reason

    # 100 s pass at every reading of the clock, a 1-minute budget: the default probe alone is scored (it always
    # is); everything else is listed as left out for the budget, with its estimate
    short, short_board = searched(tmp_path, Clock(100.0), budget=1.0)
    short_scored = [e for e in short_board["leaderboard"] if "cv_accuracy" in e]
    assert [e["stage"] for e in short_scored] == ["default probe"]
    assert short_board["winner"] == short_board["default_probe"]["recipe"]
    budget = [e for e in short_board["left_out"] if e["why"] == "budget" and e["stage"] != "ensemble"]
    assert len(budget) >= 5 and all(e["estimated_seconds"] > 0 for e in budget)
    assert any(e["stage"] == "ensemble" for e in short_board["left_out"])
    assert len(scored) > 3 * len(short_scored)


def test_repeated_cross_validation_is_the_same_for_a_seed_and_pairs_candidates_fold_by_fold(tmp_path, stand_ins):
    s1, board1 = searched(tmp_path, seed=3)
    s2, board2 = searched(tmp_path, seed=3)
    assert board1["winner"] == board2["winner"]
    assert ([(e["recipe"], e.get("fold_accuracies")) for e in board1["leaderboard"]]
            == [(e["recipe"], e.get("fold_accuracies")) for e in board2["leaderboard"]])
    assert s1.fold_sets is not None and s2.fold_sets is not None
    assert len(s1.fold_sets) == REPEATS and all(len(f) == 3 for f in s1.fold_sets)
    for a, b in zip(s1.fold_sets, s2.fold_sets):
        assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    # the repeats split the photos differently from each other, and another seed differently again
    tests = [[sorted(te.tolist()) for _, te in f] for f in s1.fold_sets]
    assert tests[0] != tests[1] != tests[2]
    other_seed = search_for(tmp_path, seed=4).folds()  # the folds every candidate of that search is scored on
    assert [[sorted(te.tolist()) for _, te in f] for f in other_seed] != tests
    # every candidate is scored on every fold of every repeat, in the same order: they pair up
    entries = [e for e in board1["leaderboard"] if "fold_accuracies" in e]
    assert all(len(e["fold_accuracies"]) == REPEATS * 3 for e in entries)


def cv(folds: list[float]) -> CVResult:
    return CVResult(float(np.mean(folds)), 0.0, 1.0, folds, torch.zeros(1, 2), 0.0, len(folds))


def test_a_gain_within_the_noise_is_not_kept_one_beyond_it_is(tmp_path):
    config = TrainConfig(dataset=str(tmp_path), mode="auto").validate()
    s = Search(config, samples(tmp_path), str(tmp_path), CLASSES, JobContext(lambda e: None, JobControl()),
               torch.device("cpu"), clock=Clock(), precision="fp32")
    base = [0.80, 0.85, 0.75, 0.82, 0.78, 0.81, 0.79, 0.84, 0.77]
    noisy = [a + d for a, d in zip(base, [0.06, -0.05, 0.07, -0.04, 0.05, -0.06, 0.04, -0.03, 0.01])]
    steady = [a + d for a, d in zip(base, [0.03, 0.02, 0.03, 0.02, 0.04, 0.02, 0.03, 0.01, 0.03])]
    incumbent, within, beyond = (Scored(None, name, cv(f), 0.0) for name, f in
                                 (("incumbent", base), ("within", noisy), ("beyond", steady)))
    for sc in (incumbent, within, beyond):
        s.leaderboard.append({"recipe": sc.name})
    assert s.challenge(incumbent) and s.incumbent is incumbent
    assert np.mean(noisy) > np.mean(base)  # a higher mean, by less than its standard error
    assert not s.challenge(within) and s.incumbent is incumbent
    entry = next(e for e in s.leaderboard if e["recipe"] == "within")
    assert entry["kept"] is False and 0 < entry["gain"] < entry["gain_se"]
    assert s.challenge(beyond) and s.incumbent is beyond  # a smaller, steadier gain clears the noise


def test_a_change_on_a_single_fold_is_within_the_noise_whatever_its_size(tmp_path):
    # cats-2 of bench/auto_recipe.py: a head setting that judged one photo differently in one of 15 folds was
    # kept, because its gain equals its standard error exactly and float rounding put it 4e-19 above
    config = TrainConfig(dataset=str(tmp_path), mode="auto").validate()
    s = Search(config, samples(tmp_path), str(tmp_path), CLASSES, JobContext(lambda e: None, JobControl()),
               torch.device("cpu"), clock=Clock(), precision="fp32")
    base = [0.5] * 15
    one_photo, many = list(base), list(base)
    one_photo[0] += 1 / 20
    many[3] += 0.4  # 8 photos of 20, still one fold
    incumbent, *challengers = (Scored(None, name, cv(f), 0.0) for name, f in
                               (("incumbent", base), ("one photo", one_photo), ("one fold", many)))
    for sc in (incumbent, *challengers):
        s.leaderboard.append({"recipe": sc.name})
    s.challenge(incumbent)
    for challenger in challengers:
        gain, se = paired_gain(challenger.cv.fold_accuracies, base)
        assert gain == pytest.approx(se, rel=1e-9) and gain > 0
        assert not s.challenge(challenger) and s.incumbent is incumbent
    two_folds = list(one_photo)
    two_folds[1] += 1 / 20  # the same gain on a second fold as well: now it clears the noise
    steadier = Scored(None, "two folds", cv(two_folds), 0.0)
    s.leaderboard.append({"recipe": steadier.name})
    assert s.challenge(steadier) and s.incumbent is steadier


def test_the_default_probe_is_always_scored_and_auto_never_estimates_below_it(tmp_path, stand_ins, monkeypatch):
    # --backbone efficientnet_lite1 and Lite0 the only other: the default probe is a Lite1 probe
    s, board = searched(tmp_path, backbone="efficientnet_lite1")
    default = board["default_probe"]
    entry = next(e for e in board["leaderboard"] if e["recipe"] == default["recipe"])
    assert entry["stage"] == "default probe" and entry["settings"]["probe"] is True
    assert entry["settings"]["backbones"] == ["efficientnet_lite1"]
    assert board["cv_accuracy"] >= default["cv_accuracy"]
    assert s.default is not None and s.incumbent is not None
    # every change of incumbent raised the estimate: the kept entries' accuracies only go up
    kept = [e["cv_accuracy"] for e in s.leaderboard if e.get("kept")]  # in the order they were tried
    assert kept[0] == pytest.approx(default["cv_accuracy"], abs=1e-6) and kept == sorted(kept)

    # an ensemble that beats no single recipe by more than the noise is not kept
    monkeypatch.setattr(ensemble, "paired_gain", lambda a, b: (0.0, 0.01))
    s2, board2 = searched(tmp_path, backbone="efficientnet_lite1")
    assert not board2["winner"].startswith("ensemble")
