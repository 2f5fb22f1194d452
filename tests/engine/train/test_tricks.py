"""The trick flags: dropout acts in training only, TTA averages the mirror image's logits (and an export carries
it), mixup/cutmix mix images and labels alike, EMA weights differ from the raw ones; each is recorded in
config.json and used by the run's later commands."""

import json
from pathlib import Path

import pytest
import torch
from helpers.data import make_dataset
from torch import nn

from engine.core.checkpoints import load_checkpoint
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.evaluate.evaluation import FlipAveraged, evaluate_run
from engine.models.classifier import Classifier
from engine.models.loading import load_run_model
from engine.serve.export import export_run
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import train
from engine.train.loop import Mixer


def run(dataset, **kw):
    cfg = TrainConfig(**{"dataset": str(dataset), "img_size": 32, "batch_size": 8, "workers": 0, "lr": 1e-2, **kw})
    final = run_job("train", lambda ctx: train(cfg, ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return Path(final.result["run_dir"])


def tiny_classifier(dropout: float) -> Classifier:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(backbone, nn.Linear(8, 3), [0.5] * 3, [0.25] * 3, dropout=dropout)


def test_dropout_acts_in_training_only():
    plain, dropped = tiny_classifier(0.0), tiny_classifier(0.5)
    x = torch.rand(4, 3, 16, 16)
    assert plain.state_dict().keys() == dropped.state_dict().keys()  # checkpoints are the same either way
    dropped.eval()
    torch.testing.assert_close(dropped(x), plain.eval()(x))
    dropped.train()
    assert not torch.allclose(dropped(x), plain(x))


def test_flip_tta_averages_the_mirror_images_logits():
    model = tiny_classifier(0.0).eval()
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(FlipAveraged(model)(x), (model(x) + model(x.flip(-1))) / 2)
    assert not torch.allclose(FlipAveraged(model)(x), model(x))


def test_mixup_and_cutmix_mix_images_and_labels_alike():
    torch.manual_seed(1)
    x = torch.rand(6, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, target = Mixer("mixup", 3)(x, y)
    torch.testing.assert_close(target.sum(1), torch.ones(6))
    lam = target[torch.arange(6), y]  # the weight of each image's own label (its partner may share it)
    assert not torch.equal(mixed, x) and bool((lam >= 0.5 - 1e-6).any())
    torch.manual_seed(2)
    cut, target = Mixer("cutmix", 3)(x, y)
    pasted = (cut != x).any(1)  # [N, H, W]: where a partner's pixels came in
    area = pasted.float().mean((1, 2))
    own = target[torch.arange(6), y]
    changed = area > 0
    # the pasted share of the image is the share of the label that went to the partner (when it differs)
    assert bool(changed.any()) and bool((own[changed] <= 1 - area[changed] + 1e-6).all())


def test_probe_tta_is_recorded_and_eval_predict_export_reproduce_it(tmp_path):
    data = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6, "green": 6})
    run_dir = run(data, mode="probe", epochs=3, tta=True, dropout=0.2, label_smoothing=0.1)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["tta"], cfg["dropout"], cfg["label_smoothing"]) == (True, 0.2, 0.1)
    report = json.loads((run_dir / "report.json").read_text())
    assert evaluate_run(run_dir)["tta"] is True
    assert evaluate_run(run_dir)["accuracy"] == pytest.approx(report["accuracy"])
    model, record = load_run_model(run_dir)
    image = str(next((data / "red").iterdir()))
    with_tta = predict_paths(model, record, [image], top_k=3)[0]["predictions"]
    without = predict_paths(model, record, [image], top_k=3, tta=False)[0]["predictions"]
    assert with_tta != without
    exported = export_run(run_dir)
    assert exported["max_abs_diff"] < 1e-3  # the export matches predict with TTA: it carries the flip
    extra = {"tlbench.json": ""}
    torch.export.load(exported["path"], extra_files=extra)  # pt2, the default format
    assert json.loads(extra["tlbench.json"])["tta"] is True


def test_ema_and_mix_in_fine_tuning_are_recorded_and_best_pt_holds_the_average(tmp_path):
    data = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6, "green": 6})
    run_dir = run(data, mode="head", epochs=1, augment="none", ema=True, ema_decay=0.5, mix="both", dropout=0.3)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["ema"], cfg["ema_decay"], cfg["mix"], cfg["dropout"]) == (True, 0.5, "both", 0.3)
    best = load_checkpoint(run_dir / "best.pt")
    assert set(best["model"]) == set(best["model_raw"]) and best["ema_n_averaged"] >= 2
    assert not torch.equal(best["model"]["head.weight"], best["model_raw"]["head.weight"])
    model, _ = load_run_model(run_dir)  # eval, predict and export load the average
    torch.testing.assert_close(model.head.weight, best["model"]["head.weight"])
