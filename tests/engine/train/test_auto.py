"""`train --mode auto`: the search keeps to its budget, never reads the held-out split while choosing, and the
model it chose is recorded and reproduced by resume, eval, predict and export."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data import COLOURS, write_image
from PIL import Image

import engine.train.auto.recipes as recipes
import engine.train.auto.refit as refit
import engine.train.auto.run as auto
import engine.train.auto.search as search
from engine.core.checkpoints import load_checkpoint
from engine.core.events import JobFinished
from engine.core.jobs import JobContext, JobControl, run_job
from engine.evaluate.evaluation import evaluate_run
from engine.models.loading import load_run_model
from engine.serve.export import export_run
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import resume, train

CLASSES = ("red", "green", "blue")


def train_val_dataset(root: Path, n_train: int = 6, n_val: int = 3) -> Path:
    """root/train/<colour>/ and root/val/<colour>/: the split is the folders', so val can change alone."""
    for c in CLASSES:
        for i in range(n_train):
            write_image(root / "train" / c / f"{c}_{i}.png", COLOURS[c], seed=i)
        for i in range(n_val):
            write_image(root / "val" / c / f"{c}_v{i}.png", COLOURS[c], seed=50 + i)
    return root


def plant_validation_signal(root: Path) -> None:
    """Every validation image becomes another colour's, with a class-specific stripe: a search that looked at
    them would score differently (they now contradict the training colours)."""
    for k, c in enumerate(CLASSES):
        for path in sorted((root / "val" / c).iterdir()):
            arr = np.asarray(Image.open(path)).copy()
            arr[:] = COLOURS[CLASSES[(k + 1) % 3]]
            arr[4 * k:4 * k + 4] = 255
            Image.fromarray(arr).save(path)
            os.utime(path, (1_000_000 + k, 1_000_000 + k))  # a new identity for the feature cache


def config(dataset: Path, **kw) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), mode="auto", img_size=32, folds=2, workers=0, **kw)


def small_search_settings(monkeypatch, backbones=("efficientnet_lite0",)):
    """The shipped Lites named, one augmented view, one L2 beside the default: every stage, quickly."""
    monkeypatch.setattr(recipes, "available_backbones", lambda: list(backbones))
    monkeypatch.setattr(recipes, "AUG_VIEWS", 1)
    monkeypatch.setattr(recipes, "L2_GRID", (1e-2,))


@pytest.fixture
def small_search(monkeypatch):
    small_search_settings(monkeypatch)


def feature_requests(monkeypatch) -> list[tuple[str, list[str]]]:
    """(who asked: "search" or "refit", the files) of every request for features auto makes, one per call."""
    seen: list[tuple[str, list[str]]] = []
    for module in (search, refit):
        def spy(backbone, img_size, views, root, paths, *a, real=module.view_features, who=module.__name__, **k):
            seen.append((who.rsplit(".", 1)[1], list(paths)))
            return real(backbone, img_size, views, root, paths, *a, **k)

        monkeypatch.setattr(module, "view_features", spy)
    return seen


def test_auto_chooses_on_training_data_only_and_its_recipe_is_reproduced(tmp_path, small_search, monkeypatch):
    data = train_val_dataset(tmp_path / "colours")
    seen = feature_requests(monkeypatch)
    final = run_job("train", lambda ctx: train(config(data), ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    r = final.result
    run_dir = Path(r["run_dir"])
    board = json.loads((run_dir / "leaderboard.json").read_text())
    assert board == json.loads(json.dumps(r["auto"]))  # the run dir's leaderboard is the result's
    tried = [e for e in board["leaderboard"] if "cv_accuracy" in e]
    assert len(tried) >= 6 and all(e["seconds"] >= 0 and 0 <= e["cv_accuracy"] <= 1 for e in tried)
    assert {e["settings"]["tta"] for e in tried if e["stage"] != "ensemble"} == {"none", "flip", "ten-crop"}
    assert board["default_probe"]["recipe"] in {e["recipe"] for e in tried}
    assert board["cv_accuracy"] >= board["default_probe"]["cv_accuracy"]
    # the search asked for training files alone; then the final fit asked for the training files and, last,
    # once the model was chosen, the held-out files (the dataset's val/ folder) for the report
    train_files = {str(p) for p in (data / "train").rglob("*.png")}
    val_files = {str(p) for p in (data / "val").rglob("*.png")}
    searched = [paths for who, paths in seen if who == "search"]
    refitted = [paths for who, paths in seen if who == "refit"]
    assert searched and all(set(paths) == train_files for paths in searched)
    assert [who for who, _ in seen] == ["search"] * len(searched) + ["refit"] * len(refitted)
    members = json.loads((run_dir / "config.json").read_text())["auto"]["model"]["members"]
    n_parts = sum(len(m["parts"]) for m in members)
    assert len(refitted) == 2 * n_parts  # each member's backbones: the training photos, then the held-out ones
    assert all(set(p) == train_files for p in refitted[:n_parts]) and all(set(p) == val_files
                                                                            for p in refitted[n_parts:])
    assert r["train_images"] == len(train_files) and r["val_images"] == len(val_files)

    # the model recorded: config.json holds its structure (the recipes, the input every member reads)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["auto"]["winner"] == board["winner"] and cfg["preprocessing"] == cfg["auto"]["model"]["input"]
    names = [m["name"] for m in members]
    assert board["winner"] == names[0] if len(names) == 1 else board["winner"].startswith("ensemble")

    # eval, predict, export: the run's model gives the report's held-out accuracy
    report = json.loads((run_dir / "report.json").read_text())
    assert report["split"] == "val" and report["estimate"]["kind"] == "held-out"
    assert evaluate_run(run_dir)["accuracy"] == pytest.approx(report["accuracy"])
    model, record = load_run_model(run_dir)
    val = sorted(str(p) for p in (data / "val").rglob("*.png"))
    rows = predict_paths(model, record, val, top_k=1)
    assert [row["predictions"][0]["class"] for row in rows] == [Path(p).parent.name for p in val]
    exported = export_run(run_dir)
    assert exported["max_abs_diff"] < 1e-3

    # resume: a run stopped after choosing (here: its final fit undone) fits the same heads again, no search
    heads = load_checkpoint(run_dir / "best.pt")["model"]
    for name in ("summary.json", "best.pt", "last.pt", "report.json", "metrics.jsonl"):
        (run_dir / name).unlink()

    def no_search(*a, **k):
        raise AssertionError("a resumed auto run searched again")

    monkeypatch.setattr(auto, "run_search", no_search)
    again = resume(run_dir, JobContext(lambda e: None, JobControl()))
    assert again["val_acc"] == r["val_acc"]
    monkeypatch.undo()
    seen = feature_requests(monkeypatch)
    small_search_settings(monkeypatch)
    resumed = load_checkpoint(run_dir / "best.pt")["model"]
    assert resumed.keys() == heads.keys()
    for k, v in resumed.items():
        assert torch.equal(v, heads[k]), k

    # the planted signal: held-out images that contradict the training ones change nothing in the choice
    plant_validation_signal(data)
    board2, _ = auto.choose_recipe(config(data), JobContext(lambda e: None, JobControl()))
    assert all(set(paths) == train_files for _, paths in seen)
    assert board2["winner"] == board["winner"]
    assert ([(e["recipe"], e.get("cv_accuracy"), e.get("cv_std")) for e in board2["leaderboard"]]
            == [(e["recipe"], e.get("cv_accuracy"), e.get("cv_std")) for e in board["leaderboard"]])


def test_the_search_starts_no_candidate_past_its_budget(tmp_path, small_search):
    data = train_val_dataset(tmp_path / "colours", n_train=4, n_val=1)
    cfg = config(data, budget=1e-4)  # 6 ms: the default probe runs (it always does), no other fits
    board, _ = auto.choose_recipe(cfg, JobContext(lambda e: None, JobControl()))
    scored = [e for e in board["leaderboard"] if "cv_accuracy" in e]
    skipped = [e for e in board["leaderboard"] if e.get("skipped") == "budget" and e["stage"] != "ensemble"]
    assert len(scored) == 1 and scored[0]["recipe"] == board["winner"] == board["default_probe"]["recipe"]
    assert len(skipped) >= 3 and all(e["estimated_seconds"] > 0 for e in skipped)
    assert {e["recipe"] for e in skipped} <= {e["recipe"] for e in board["left_out"]}


def test_auto_after_an_audit_and_marks_trains_on_the_plan_it_searched(tmp_path, small_search, monkeypatch):
    """The workflow the audit invites: marks in the exclude list and a duplicate group that leaks across the
    plain split. auto searched on split_dataset's lists and prepare() trained on plan_split's, so every such
    run ended with 'The dataset changed during the search'. Now one plan serves both: the run completes, no
    marked file is ever read, and the duplicate group sits on one side."""
    from engine.data.exclude import save_audit, write_exclude
    from engine.data.splits import load_plan

    data = tmp_path / "colours"
    for c in CLASSES:
        for i in range(8):
            write_image(data / c / f"{c}_{i}.png", COLOURS[c], seed=10 * i + len(c))
    marked = data / "red" / "red_0.png"
    write_exclude(data, [str(marked)])
    pair = [str(data / "green" / f"green_{i}.png") for i in range(8)]  # one group: it must not straddle
    save_audit(data, {"duplicates": [{"paths": pair}]})
    requests = feature_requests(monkeypatch)
    final = run_job("train", lambda ctx: train(config(data, budget=2.0, seed=1, holdout=0.25), ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    run_dir = final.result["run_dir"]
    assert all(str(marked) not in paths for _, paths in requests)
    plan = load_plan(run_dir)
    assert plan is not None and plan["excluded"] == 1
    sides = {rel: side for side in ("train", "val") for rel, _ in plan[side]}
    assert len({sides[os.path.relpath(p, data)] for p in pair}) == 1
    assert json.load(open(f"{run_dir}/config.json"))["excluded_images"] == 1
