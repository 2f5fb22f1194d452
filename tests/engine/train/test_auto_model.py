"""The model `--mode auto` saves when an ensemble wins: one module (a concatenation member, single-backbone members,
flip views, member weights), refitted on every training photo, reproduced by eval, predict, export, explain and
resume; and the ten-crop views the search extracts are the very crops the module cuts.

One run is trained for the module: an ensemble is made to win (every change kept, fixed member weights), since on
a few generated images nothing beats anything by more than the noise. Its backbones are the tests' tiny CNN
family (tests/helpers/tiny_family.py, "pretrained" weights of its own): milliseconds a pass, exports in seconds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.data import COLOURS, write_image
from helpers.tiny_family import TinyFamily
from PIL import Image

import engine.evaluate.evaluation as evaluation
import engine.train.auto.ensemble as ensemble
import engine.train.auto.recipes as recipes
import engine.train.auto.refit as refit
import engine.train.auto.run as run
import engine.train.auto.search as search
from engine.core.checkpoints import load_checkpoint
from engine.core.events import JobFinished
from engine.core.jobs import JobContext, JobControl, run_job
from engine.data.images import load_rgb
from engine.data.loaders import eval_transform
from engine.evaluate.evaluation import evaluate_run
from engine.evaluate.explain import explain_paths
from engine.features.views import SquareCropView, outer_square, ten_crop_offsets, ten_crop_views
from engine.models.ensemble import Ensemble, views_of
from engine.models.loading import load_run_model
from engine.models.registry import get_spec, register_family, remove_family
from engine.serve.export import export_run, load_exported
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import resume, train

CLASSES = ("red", "green", "blue")
WEIGHTS = (0.5, 0.3, 0.2)
PARITY = 1e-6  # probabilities; predict rounds to 6 decimals
BACKBONES = ["tiny_cnn", "tiny_cnn_wide"]


def fixed_weights(probs, y, steps=20):
    """The members' weights, whatever the predictions: the test needs several members with unequal weights."""
    w = np.array(WEIGHTS[:len(probs)] + (0.0,) * max(0, len(probs) - len(WEIGHTS)))
    return w / w.sum()


def flip_concat(config, median_side, ranked, incumbent):
    """The concatenation stage's candidates, with flip test-time views."""
    for r in recipes.stage_concat(config, median_side, ranked, incumbent):
        yield replace(r, tta="flip")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    family = TinyFamily(tmp_path_factory.mktemp("tiny-weights"))
    for seed, name in enumerate(BACKBONES):
        family.ship(name, seed=seed)
    register_family(family)
    yield family
    remove_family(family.name)


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, tiny):
    data = tmp_path_factory.mktemp("auto-model") / "colours"
    for c in CLASSES:
        for i in range(6):
            write_image(data / c / f"{c}_{i}.png", COLOURS[c], size=40, seed=i)
    fitted: list[tuple[int, list[int]]] = []
    requested: list[list[str]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(recipes, "available_backbones", lambda: list(BACKBONES))
        mp.setattr(run, "STAGES", (recipes.stage_backbones, recipes.stage_flip, flip_concat))
        mp.setattr(search, "paired_gain", lambda a, b: (1.0, 0.0))  # every change kept: the flip concat last
        mp.setattr(ensemble, "paired_gain", lambda a, b: (1.0, 0.0))  # and the ensemble wins
        # its members: the flip concatenation and the two flip singles (the colours are too easy for the CV
        # accuracies to rank them: they tie at 1.0)
        real_pool = ensemble.pool
        mp.setattr(ensemble, "pool", lambda s: sorted((m for m in real_pool(s) if m.recipe and m.recipe.tta == "flip"),
                                                      key=lambda m: -len(m.recipe.backbones)))
        mp.setattr(ensemble, "select_weights", fixed_weights)
        real_fit, real_features = refit.fit_linear, refit.view_features

        def fit_spy(x, y, *a, **k):
            fitted.append((x.shape[0], y.tolist()))
            return real_fit(x, y, *a, **k)

        def features_spy(backbone, size, views, root, paths, *a, **k):
            requested.append(list(paths))
            return real_features(backbone, size, views, root, paths, *a, **k)

        mp.setattr(refit, "fit_linear", fit_spy)
        mp.setattr(refit, "view_features", features_spy)
        config = TrainConfig(dataset=str(data), mode="auto", backbone="tiny_cnn", img_size=32, folds=2, workers=0)
        final = run_job("train", lambda ctx: train(config, ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    run_dir = Path(final.result["run_dir"])
    files = sorted(str(p) for p in data.rglob("*.png"))
    return SimpleNamespace(data=data, run_dir=run_dir, result=final.result, fitted=fitted, requested=requested,
                           files=files, labels=[CLASSES.index(Path(f).parent.name) for f in files],
                           report=json.loads((run_dir / "report.json").read_text()))


def test_the_ensemble_is_one_module_of_shared_backbones(ensemble_run):
    cfg = json.loads((ensemble_run.run_dir / "config.json").read_text())
    structure = cfg["auto"]["model"]
    assert ensemble_run.result["recipe"].startswith("ensemble") and len(structure["members"]) == 3
    assert [m["weight"] for m in structure["members"]] == pytest.approx(WEIGHTS)
    assert sorted(len(m["parts"]) for m in structure["members"]) == [1, 1, 2]  # a concatenation, two singles
    assert sorted(b["name"] for b in structure["backbones"]) == BACKBONES
    model, _ = load_run_model(ensemble_run.run_dir)
    assert isinstance(model, Ensemble) and len(model.extractors) == 2  # each backbone once, shared
    assert all(len(v) == 2 for v in model.views)  # flip test-time augmentation inside the module
    # the checkpoint keeps the heads and the weights, loads with weights_only, and no backbone is in it
    state = load_checkpoint(ensemble_run.run_dir / "best.pt")["model"]
    assert {k.split(".")[0] for k in state} == {"heads", "weights"}
    assert state["weights"].tolist() == pytest.approx(WEIGHTS)


def test_the_refit_saw_every_training_photo(ensemble_run):
    # no held-out photos (the default): each member's head was solved on all 18 photos, labels and all
    members = 3
    assert len(ensemble_run.fitted) == members
    sorted_labels = sorted(ensemble_run.labels)
    assert all(rows == 18 and sorted(labels) == sorted_labels for rows, labels in ensemble_run.fitted)
    assert ensemble_run.requested and all(sorted(p) == ensemble_run.files for p in ensemble_run.requested)
    assert ensemble_run.result["train_images"] == 18 and ensemble_run.result["val_images"] == 0
    assert ensemble_run.result["holdout_accuracy"] is None


def test_eval_predict_and_export_reproduce_the_ensemble(ensemble_run, monkeypatch):
    run_dir, files = ensemble_run.run_dir, ensemble_run.files
    scored = []
    real = evaluation.compute_logits

    def spy(model, paths, *a, **k):
        logits, errors = real(model, paths, *a, **k)
        scored.append((list(paths), logits))
        return logits, errors

    monkeypatch.setattr(evaluation, "compute_logits", spy)
    evaluated = evaluate_run(run_dir, dataset=str(ensemble_run.data), workers=0)
    assert evaluated["n"] == 18 and evaluated["split"] == "all"
    paths, logits = scored[0]
    eval_probs = {p: logits[i].softmax(0) for i, p in enumerate(paths)}

    model, record = load_run_model(run_dir)
    rows = predict_paths(model, record, files, top_k=3)
    exported = export_run(run_dir)
    assert exported["max_abs_diff"] <= PARITY
    run_export, _ = load_exported(exported["path"])
    module, _ = load_run_model(run_dir, precision="fp32")
    for path, row in zip(files, rows):
        predicted = torch.zeros(3)
        for p in row["predictions"]:
            predicted[p["index"]] = p["prob"]
        pixels = torch.from_numpy(np.asarray(load_rgb(path)).copy()).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            from_export = run_export(pixels)[0]
            from_module = module(eval_transform(load_rgb(path), record.preprocessing)[None].float() / 255)
        assert torch.allclose(eval_probs[path], predicted, atol=PARITY), path
        assert torch.allclose(from_export, from_module.softmax(1)[0], atol=PARITY), path
        assert torch.allclose(from_export, predicted, atol=PARITY), path


def probabilities(row: dict, n: int) -> torch.Tensor:
    out = torch.zeros(n)
    for p in row["predictions"]:
        out[p["index"]] = p["prob"]
    return out


@pytest.mark.parametrize("fmt", ["pt2", "torchscript", "onnx"])
def test_every_export_format_is_the_ensemble(ensemble_run, tmp_path, fmt):
    """The exported file is the one module, member weights, heads, flip views and all: on photos already at the
    model's resize size (nothing to resample, so onnxruntime's resize has nothing to round differently from
    torch's) every format gives predict's probabilities within 1e-6. On the run's own photos, resampled, the
    export job's check holds pt2 and TorchScript (torch's own resize) to 1e-6 and ONNX to the exports'
    tolerance (engine.serve.export: a grey level on a few pixels)."""
    exported = export_run(ensemble_run.run_dir, fmt)
    assert exported["checked_images"] > 0 and exported["checked_on"] == "images of the run's dataset"
    assert exported["max_abs_diff"] <= (PARITY if fmt != "onnx" else 1e-3), exported
    run_export, classes = load_exported(exported["path"])
    model, record = load_run_model(ensemble_run.run_dir)
    assert classes == list(record.classes) == sorted(CLASSES)
    side = record.preprocessing.resize_size
    paths = []
    for k, c in enumerate(CLASSES):
        for i in range(2):
            paths.append(str(write_image(tmp_path / f"{c}_{i}.png", COLOURS[c], size=side, seed=70 + i + 3 * k)))
    rows = predict_paths(model, record, paths, top_k=3)
    for path, row in zip(paths, rows):
        pixels = torch.from_numpy(np.asarray(load_rgb(path)).copy()).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            got = torch.as_tensor(run_export(pixels))[0]
        print("MARGIN", fmt, float((got - probabilities(row, 3)).abs().max()))
        assert torch.allclose(got, probabilities(row, 3), atol=PARITY), (fmt, path, got, row)


def test_eval_without_held_out_photos_reports_the_cross_validated_estimate(ensemble_run):
    report = ensemble_run.run_dir / "report.json"
    before = report.read_text()  # (eval --data, in another test, may have rewritten it with its own split)
    summary = evaluate_run(ensemble_run.run_dir)
    assert summary["split"] == "cross-validated" and "never saw" in summary["note"]
    assert summary["accuracy"] == ensemble_run.result["cv_accuracy"]
    assert report.read_text() == before  # scoring photos the model was fitted on would not be an accuracy


def test_the_training_report_is_the_cross_validated_one(ensemble_run):
    """Written by the run (a copy taken before any eval): the winner's out-of-fold predictions, labelled."""
    report = ensemble_run.report
    assert report["split"] == "cross-validated" and report["n"] == 18
    assert report["accuracy"] == ensemble_run.result["cv_accuracy"]
    assert report["estimate"]["kind"] == "cross-validated" and "refitted on all" in report["estimate"]["note"]


def test_explain_gives_the_ensembles_prediction_and_a_heatmap(ensemble_run, tmp_path):
    model, record = load_run_model(ensemble_run.run_dir)
    out = explain_paths(model, list(record.classes), record.preprocessing, ensemble_run.files[:2], tmp_path)
    predicted = predict_paths(model, record, ensemble_run.files[:2], top_k=1)
    for result, row in zip(out, predicted):
        assert result["target"]["class"] == row["predictions"][0]["class"]
        assert result["target"]["prob"] == pytest.approx(row["predictions"][0]["prob"], abs=PARITY)
        heat = np.load(result["heatmap"])
        assert heat.shape == (40, 40) and 0 <= heat.min() and heat.max() <= 1 and heat.max() > 0


def test_resume_refits_the_same_heads(ensemble_run, tmp_path):
    import shutil

    run_dir = tmp_path / ensemble_run.run_dir.name
    shutil.copytree(ensemble_run.run_dir, run_dir)
    heads = load_checkpoint(run_dir / "best.pt")["model"]
    for name in ("summary.json", "best.pt", "last.pt", "metrics.jsonl"):
        (run_dir / name).unlink()
    resume(run_dir, JobContext(lambda e: None, JobControl()))
    again = load_checkpoint(run_dir / "best.pt")["model"]
    assert again.keys() == heads.keys() and all(torch.equal(again[k], heads[k]) for k in heads)


def test_the_ten_crop_views_are_the_crops_the_module_cuts(tmp_path):
    """What the search extracted for view tenK (engine.features.views) is, pixel for pixel, what the saved
    module cuts from its input for that view: the search scored exactly the model it saves."""
    prep = get_spec("efficientnet_lite0").preprocessing(64)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8), "RGB")
    square = eval_transform(img, outer_square(prep))[None]  # what the module is given
    offsets = ten_crop_offsets(prep)
    assert len(set(offsets)) == 5 and square.shape[-1] == prep.resize_size > prep.crop_size
    cut = [Ensemble.view(square, v)[0] for v in views_of(prep.crop_size, offsets, mirror=True)]
    extracted = [SquareCropView(prep, int(name[3:]))(img) for name in ten_crop_views()]
    # the module's order is (crop, its mirror) per place; the views' is the five crops, then their mirrors
    by_place = [extracted[k // 2 + (5 if k % 2 else 0)] for k in range(10)]
    assert all(torch.equal(a, b) for a, b in zip(cut, by_place))


def test_the_command_line_says_where_auto_s_accuracy_comes_from(ensemble_run, monkeypatch, capsys):
    """`tlbench train --mode auto` without --json: the accuracy is labelled (here the search's cross-validated
    estimate: no photo was held out) beside the default probe's, and the final model saw every photo."""
    import engine.cli.commands.train as train_command
    from engine.cli import main

    final = JobFinished("completed", ensemble_run.result)
    monkeypatch.setattr(train_command, "run_cli_job", lambda *a, **k: (0, final, None))
    assert main(["train", str(ensemble_run.data), "--mode", "auto"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "cross-validated estimate from the search" in out and "the default probe's CV" in out, out
    assert "18 training photos (the final model saw all of them), 0 held out" in out, out
