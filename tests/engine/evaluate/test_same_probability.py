"""Issue 24 item 3: the run's own report, predict and Grad-CAM give an image the same probability, in a run
computed in reduced precision (bf16 autocast, which runs on any CPU). The report of a probe comes from the
features cached during training; predict and explain compute through the model: the two paths must agree."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset

import engine.train.probe as probe_module
from engine.core.events import JobFinished
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.evaluate.explain import explain_image
from engine.models.loading import load_run_model
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import train

TOLERANCE = 1e-4  # what the workflow test allows between eval, predict, explain and export


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_report_predict_and_gradcam_agree_on_each_probability(tmp_path, monkeypatch, precision):
    data = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6, "green": 6})
    seen = {}
    real_build = probe_module.build_report

    def spy(logits, labels, paths, classes, *a, **k):
        seen.update(probs=logits.float().softmax(1), paths=list(paths))
        return real_build(logits, labels, paths, classes, *a, **k)

    monkeypatch.setattr(probe_module, "build_report", spy)
    cfg = TrainConfig(dataset=str(data), backbone="squeezenet1_1", weights="random", img_size=32, epochs=3,
                      workers=0, precision=precision, seed=1)
    done = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(done, JobFinished) and done.reason == "completed", done
    run_dir = done.result["run_dir"]
    assert read_json(f"{run_dir}/config.json")["precision_resolved"] == precision
    report_probs, paths = seen["probs"], seen["paths"]
    assert paths

    model, record = load_run_model(run_dir, "cpu")
    predicted = predict_paths(model, record, paths, top_k=3, device="cpu")
    for i, row in enumerate(predicted):
        got = torch.zeros(3)
        for p in row["predictions"]:
            got[record.classes.index(p["class"])] = p["prob"]
        assert (got - report_probs[i]).abs().max() <= TOLERANCE, ("predict", paths[i], got, report_probs[i])
        _, info, _ = explain_image(model, record.classes, record.preprocessing, paths[i])
        top = int(report_probs[i].argmax())
        assert info["index"] == top, ("gradcam", paths[i])
        assert abs(info["prob"] - float(report_probs[i][top])) <= TOLERANCE, ("gradcam", paths[i], info)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_fine_tuned_runs_report_lists_the_probabilities_predict_gives(tmp_path, precision):
    """A fine-tuned run's report comes from its best epoch's validation logits (computed during training); every
    image it lists (mistakes, least sure right answers) has the probability predict computes from best.pt."""
    data = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6, "green": 6})
    cfg = TrainConfig(dataset=str(data), mode="full", backbone="squeezenet1_1", weights="random", img_size=32,
                      epochs=2, freeze_epochs=1, batch_size=4, workers=0, precision=precision, seed=3, lr=3e-3)
    done = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(done, JobFinished) and done.reason == "completed", done
    run_dir = done.result["run_dir"]
    report = read_json(f"{run_dir}/report.json")
    listed = report["mistakes"] + report["least_confident"]
    assert listed
    model, record = load_run_model(run_dir, "cpu")
    predicted = predict_paths(model, record, [r["path"] for r in listed], top_k=3, device="cpu")
    for row, got in zip(listed, predicted):
        probs = {p["class"]: p["prob"] for p in got["predictions"]}
        assert abs(probs[row["predicted"]] - row["prob_predicted"]) <= TOLERANCE, (row, probs)
        assert abs(probs[row["true"]] - row["prob_true"]) <= TOLERANCE, (row, probs)
