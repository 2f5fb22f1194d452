"""Runs and reports of a real length for the Results, Attack, Dream and Runs tests: the 37 Oxford-IIIT Pets
breeds (long names), a report built by engine.evaluate.evaluation from fixed logits, and runs that finished, stopped
or failed at start. Everything is deterministic (fixed names, dates, numbers), so snapshots can use it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.evaluate.evaluation import build_report
from helpers.data import DEMO, OXFORD_PETS_CLASSES, make_pets_like
from helpers.tui import make_app

PETS = sorted(OXFORD_PETS_CLASSES)  # the order the engine's scan gives them (capitals first)
PETS_RUN = "20260101-120000-oxford-pets-efficientnet_lite0-probe"
PER_CLASS = 4


def pets_dataset(root: Path) -> Path:
    return make_pets_like(root, per_class=PER_CLASS)


def predicted_class(k: int, j: int) -> int:
    """Image j of class k: mostly right; every fifth (by k + j) read as another breed, and the terriers
    confused with each other, so the long names meet in the captions."""
    name = PETS[k]
    if name == "yorkshire_terrier" and j < 2:
        return PETS.index("scottish_terrier")
    if name == "american_pit_bull_terrier" and j == 0:
        return PETS.index("staffordshire_bull_terrier")
    if (k + j) % 5 == 0:
        return (k * 7 + j + 1) % len(PETS) if (k * 7 + j + 1) % len(PETS) != k else (k + 1) % len(PETS)
    return k


def pets_report(dataset: Path, mistakes: bool = True) -> dict:
    """engine.evaluate.evaluation's report for fixed logits over the dataset's images (PER_CLASS per class)."""
    paths, labels, preds = [], [], []
    for k, name in enumerate(PETS):
        for j in range(PER_CLASS):
            paths.append(str(dataset / name / f"{name}_{j + 1}.jpg"))
            labels.append(k)
            preds.append(predicted_class(k, j) if mistakes else k)
    n, c = len(paths), len(PETS)
    logits = torch.zeros(n, c)
    for i, (label, pred) in enumerate(zip(labels, preds)):
        logits[i, pred] = 4.0 + (i % 7) * 0.3  # how sure it is varies, so the top losses have an order
        if label != pred:
            logits[i, label] = 1.0 + (i % 3) * 0.5
    return build_report(logits, torch.tensor(labels), paths, PETS)


def write_pets_run(root: Path, dataset: Path, name: str = PETS_RUN, *, status: str = "done",
                   created: str = "2026-01-01T12:00:00+0000", backbone: str = "efficientnet_lite0",
                   mode: str = "probe", report: dict | None = None, epochs: int = 5) -> Path:
    """A run as the engine leaves it: done (summary, report), stopped (epochs, last.pt, no summary) or
    failed (config.json only, as a run that failed at start)."""
    run = root / name
    run.mkdir(parents=True)
    config = {"dataset": "/data/oxford-pets", "backbone": backbone, "mode": mode, "epochs": epochs,
              "batch_size": 64, "lr": 0.001, "img_size": 64, "seed": 0, "val_fraction": 0.2, "classes": PETS,
              "train_images": 111, "val_images": 37 * PER_CLASS, "created": created}
    (run / "config.json").write_text(json.dumps(config))
    if status == "failed":
        return run
    done = epochs if status == "done" else 2
    rows = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.5 + 0.08 * e, "val_loss": 2.2 / e,
             "val_acc": 0.45 + 0.07 * e, "lr": 0.001, "seconds": 3.0} for e in range(1, done + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "last.pt").write_bytes(b"not read by these tests")
    if status == "done":
        (run / "summary.json").write_text(json.dumps({"run_dir": str(run), "best_val_acc": rows[-1]["val_acc"],
                                                      "best_epoch": done, "seconds": 15.0}))
        (run / "report.json").write_text(json.dumps(report if report is not None else pets_report(dataset)))
    return run


def pets_app(tmp_path, monkeypatch, **runs):
    """The app on the bundled digits (the Data screen is not shown) with a pets run in use (write_pets_run's
    options); paths are shown relative to tmp_path. Returns (app, run, dataset)."""
    monkeypatch.chdir(tmp_path)
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data, **runs)
    app = make_app(DEMO, runs_dir="runs")
    app.state.run_dir = run
    return app, run, data


AUTO_RUN = "20260105-090000-oxford-iiit-pet-images-efficientnet_lite0-auto"
LR_FIND = "20260106-090000-oxford-iiit-pet-images-efficientnet_lite0-lr-find"
COMPARE = "20260107-090000-oxford-iiit-pet-images-compare"
AUDIT = "20260108-090000-oxford-iiit-pet-images-efficientnet_lite0-audit"
OXFORD = "/data/oxford-iiit-pet/images"  # the folder the Oxford archive unpacks to


def auto_board() -> dict:
    """leaderboard.json of an auto search (engine.train.auto): the winner first, one recipe skipped."""
    names = ["efficientnet_lite0, 224px, tta-flip, l2 0.001", "efficientnet_lite0, 224px, l2 0.001",
             "efficientnet_lite0, 280px, l2 0.001", "efficientnet_lite2, 260px, l2 0.001",
             "efficientnet_lite0, 224px, tta-flip, 4 aug views, l2 0.001", "efficientnet_lite0, 224px, l2 0.01"]
    rows = [{"recipe": n, "cv_accuracy": round(0.861 - 0.012 * i, 6), "cv_std": 0.021, "seconds": 4.0 + i}
            for i, n in enumerate(names)]
    rows.append({"recipe": "efficientnet_lite4, 300px, l2 0.001", "skipped": "budget"})
    return {"winner": names[0], "cv_accuracy": 0.861, "folds": 5, "scored_on": "training split (296 images)",
            "search_seconds": 41.0, "budget_minutes": 2.0, "leaderboard": rows}


def write_run_kinds(root: Path, dataset: Path) -> None:
    """Beside the training runs: an auto run (stopped once, resumed: two sessions), an lr-find (config.json of
    kind lr-find and lr_find.json), a comparison and an audit (no config.json, only their result file)."""
    run = write_pets_run(root, dataset, AUTO_RUN, mode="auto", created="2026-01-05T09:00:00+0000", epochs=3)
    config = json.loads((run / "config.json").read_text())
    config.update(dataset=OXFORD, kind="train", resumed=["2026-01-05T09:10:00+0000"], budget=2.0)
    (run / "config.json").write_text(json.dumps(config))
    (run / "leaderboard.json").write_text(json.dumps(auto_board()))
    summary = json.loads((run / "summary.json").read_text())
    summary.update(finished="2026-01-05T09:12:00+0000", seconds=95.0, session_seconds=50.0, earlier_seconds=45.0)
    (run / "summary.json").write_text(json.dumps(summary))
    lr = root / LR_FIND
    lr.mkdir(parents=True)
    (lr / "config.json").write_text(json.dumps({"kind": "lr-find", "dataset": OXFORD, "mode": "full",
                                                "backbone": "efficientnet_lite0", "img_size": 224, "seed": 0,
                                                "created": "2026-01-06T09:00:00+0000", "classes": PETS}))
    (lr / "lr_find.json").write_text(json.dumps({"suggested_lr": 0.0031, "lr": [], "loss": []}))
    compare = root / COMPARE
    compare.mkdir(parents=True)
    (compare / "compare.json").write_text(json.dumps({
        "dataset": OXFORD, "folds": 5, "best": "efficientnet_lite2", "complete": True,
        "results": [{"backbone": "efficientnet_lite2"}, {"backbone": "efficientnet_lite0"}]}))
    audit = root / AUDIT
    audit.mkdir(parents=True)
    (audit / "audit.json").write_text(json.dumps({"dataset": OXFORD, "backbone": "efficientnet_lite0",
                                                  "folds": 5, "label_issues": [{}, {}, {}]}))
