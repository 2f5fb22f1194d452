"""Evaluation reports: the numbers on hand-made logits, the report every run writes, `tlbench eval`,
and a clear error for a dataset whose classes differ from the run's."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers.data import ROOT, make_dataset
from PIL import Image

import engine.evaluate.evaluation as evaluation
from engine.core.errors import DatasetError
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.core.runs import update_report
from engine.evaluate.evaluation import build_report, evaluate_run
from engine.train.config import TrainConfig
from engine.train.job import train

REPORT_KEYS = {"split", "checkpoint", "n", "classes", "accuracy", "top5", "per_class", "confusion",
               "most_confused", "top_losses", "mistakes", "least_confident"}


def test_report_numbers_on_known_logits():
    classes = ["a", "b", "c"]
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 0, 1, 1, 0, 2])
    logits = torch.full((6, 3), -4.0)
    logits[torch.arange(6), pred] = 4.0
    logits[2, 1] = 1.0  # sample 2 is wrong but not confidently: sample 4 is the top loss
    r = build_report(logits, labels, [f"img{i}.png" for i in range(6)], classes)
    assert set(r) == REPORT_KEYS and r["n"] == 6 and r["accuracy"] == pytest.approx(4 / 6)
    assert r["top5"] is None  # fewer than 5 classes
    assert r["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]  # rows true, columns predicted
    a, b, c = r["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(2 / 3)
    assert (b["precision"], b["recall"], b["f1"]) == (pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5))
    assert a["accuracy"] == pytest.approx(4 / 6)  # one-vs-rest, kept for older readers: 2 TP + 2 TN of 6
    assert c == {"class": "c", "precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0, "support": 1}
    assert r["most_confused"] == [{"true": "a", "predicted": "b", "count": 1}, {"true": "b", "predicted": "a", "count": 1}]
    top = r["top_losses"][0]
    assert (top["path"], top["true"], top["predicted"]) == ("img4.png", "b", "a")
    assert top["prob_predicted"] > 0.99 and top["prob_true"] < 0.01 and top["loss"] > 7
    assert [t["loss"] for t in r["top_losses"]] == sorted((t["loss"] for t in r["top_losses"]), reverse=True)
    assert [(m["path"], m["true"], m["predicted"]) for m in r["mistakes"]] == [  # every wrong one, worst first
        ("img4.png", "b", "a"), ("img2.png", "a", "b")]
    assert r["top_losses"] == r["mistakes"]  # mistakes only: the 4 right answers are not "losses" to show


def test_per_class_f1_and_a_class_never_predicted():
    """F1 per class; a class the model never predicts has no precision (and so no F1), not a made-up 0."""
    logits = torch.full((4, 3), -4.0)
    logits[torch.arange(4), torch.tensor([0, 0, 1, 0])] = 4.0  # class 2's only image is read as 0
    r = build_report(logits, torch.tensor([0, 1, 1, 2]), ["p0", "p1", "p2", "p3"], ["a", "b", "c"])
    a, b, c = r["per_class"]
    assert (a["precision"], a["recall"], a["f1"]) == (pytest.approx(1 / 3), 1.0, pytest.approx(0.5))
    assert (b["precision"], b["recall"], b["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (None, 0.0, None, 1)


def test_a_model_without_mistakes_has_no_top_losses():
    logits = torch.eye(3) * 2  # right about every image, though not very sure
    r = build_report(logits, torch.tensor([0, 1, 2]), ["x", "y", "z"], ["a", "b", "c"])
    assert r["accuracy"] == 1.0 and r["top_losses"] == [] and r["mistakes"] == []


def test_the_least_confident_right_answers_are_listed_per_class():
    """Issue 24 item 2: with no mistakes there is still something to look at: per class, the right answers the
    model was least sure of (lowest probability first), at most LEAST_CONFIDENT_PER_CLASS each."""
    per = evaluation.LEAST_CONFIDENT_PER_CLASS
    n = per + 3
    sureness = torch.linspace(0.5, 3.0, n)  # image i of each class: logit margin sureness[i]
    logits = torch.zeros(2 * n, 2)
    labels = torch.tensor([0] * n + [1] * n)
    logits[:n, 0], logits[n:, 1] = sureness, sureness.flip(0)
    r = build_report(logits, labels, [f"{i}.png" for i in range(2 * n)], ["a", "b"])
    assert r["top_losses"] == [] and r["mistakes"] == []
    rows = r["least_confident"]
    for k, name in enumerate("ab"):
        mine = [x for x in rows if x["true"] == name]
        assert len(mine) == per and all(x["predicted"] == name for x in mine)
        probs = [x["prob_true"] for x in mine]
        assert probs == sorted(probs)  # least sure first
        unsure = [f"{i}.png" for i in (range(per) if k == 0 else range(2 * n - 1, 2 * n - 1 - per, -1))]
        assert [x["path"] for x in mine] == unsure


def test_top5_with_five_classes_or_more():
    logits = torch.arange(7.0).repeat(3, 1)  # class 6 first, then 5, 4, 3, 2
    r = build_report(logits, torch.tensor([6, 2, 0]), ["x", "y", "z"], list("abcdefg"))
    assert r["accuracy"] == pytest.approx(1 / 3) and r["top5"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("ev") / "colours", {"red": 8, "blue": 8, "green": 8})
    cfg = TrainConfig(dataset=str(root), img_size=32, epochs=10, lr=1e-2)
    final = run_job("train", lambda ctx: train(cfg, ctx))
    return root, final.result


def test_every_run_writes_its_report_and_figures(probe_run):
    _, result = probe_run
    report = read_json(f"{result['run_dir']}/report.json")
    assert REPORT_KEYS <= set(report) and report["n"] == result["val_images"]
    assert report["classes"] == ["blue", "green", "red"] and report["split"] == "val"
    for name in ("confusion.png", "top_losses.png"):
        with Image.open(f"{result['run_dir']}/{name}") as img:
            assert img.format == "PNG" and img.width > 100


def test_evaluate_run_keeps_other_report_keys(probe_run):
    root, result = probe_run
    update_report(result["run_dir"], {"robustness": {"eps": [0.0]}})  # another job's key
    summary = evaluate_run(result["run_dir"], str(root))
    report = read_json(f"{result['run_dir']}/report.json")
    assert report["robustness"] == {"eps": [0.0]}
    assert summary["split"] == "all" and report["n"] == 24 and summary["accuracy"] == report["accuracy"]


def test_eval_on_a_dataset_with_other_classes_lists_the_difference(probe_run, tmp_path):
    _, result = probe_run
    other = make_dataset(tmp_path / "other", {"red": 2, "blue": 2, "yellow": 2})
    with pytest.raises(DatasetError) as err:
        evaluate_run(result["run_dir"], str(other))
    msg = str(err.value)
    assert "in the dataset but not the run: yellow" in msg and "in the run but not the dataset: green" in msg


def test_eval_cli_json_and_exit_codes(probe_run, tmp_path):
    root, result = probe_run
    out = subprocess.run([sys.executable, "-m", "tui.main", "eval", result["run_dir"], "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["split"] == "val" and payload["n"] == result["val_images"] and "accuracy" in payload
    text = subprocess.run([sys.executable, "-m", "tui.main", "eval", result["run_dir"]], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    header = next(line for line in text.stdout.splitlines() if line.strip().startswith("class"))
    assert header.split() == ["class", "precision", "recall", "F1", "support"]  # not one-vs-rest accuracy
    other = make_dataset(tmp_path / "o", {"cat": 2, "dog": 2})
    bad = subprocess.run([sys.executable, "-m", "tui.main", "eval", result["run_dir"], "--data", str(other)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert bad.returncode == 2 and "cat, dog" in bad.stderr and "Traceback" not in bad.stderr


def test_a_run_whose_dataset_moved_says_to_pass_data(tmp_path):
    from engine.adversarial.robustness import validation_samples
    from engine.core.runs import load_config

    root = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6})
    cfg = TrainConfig(dataset=str(root), img_size=32, epochs=2, runs_dir=str(tmp_path / "runs"))
    run_dir = run_job("train", lambda ctx: train(cfg, ctx)).result["run_dir"]
    moved = root.rename(tmp_path / "moved")
    for call in (lambda: evaluate_run(run_dir), lambda: validation_samples(load_config(run_dir), run_dir, None, None)):
        with pytest.raises(DatasetError) as err:
            call()
        assert f"dataset {root} is no longer there" in str(err.value) and "--data PATH" in str(err.value)
    assert evaluate_run(run_dir, str(moved))["n"] == 12
    info, val = validation_samples(load_config(run_dir), run_dir, str(moved), None)
    assert info.root == moved and len(val) >= 2
