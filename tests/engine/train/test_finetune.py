"""Fine-tuning modes on tiny generated images: what is frozen stays frozen (BatchNorm statistics included),
stages named per backbone, the full-mode recipe, events, early stopping, divergence, TensorBoard, and the
accuracy bars on the demo digits and the real photos."""

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers.data import CATS_DOGS, DEMO, make_dataset
from pausing import paused_job

import engine.train.finetune as finetune_module
import engine.train.loop as loop
from engine.core.checkpoints import load_checkpoint
from engine.core.errors import ConfigError
from engine.core.events import BatchEnded, EpochEnded, JobFailed, JobFinished, LogLine
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.core.records import Preprocessing
from engine.core.runs import read_metrics
from engine.models.build import build_classifier
from engine.models.classifier import split_head
from engine.models.registry import build_architecture, get_spec
from engine.models.stages import backbone_stages
from engine.train.augment import DropBadFiles, train_transform
from engine.train.config import TrainConfig
from engine.train.job import train
from engine.train.recipe import param_groups, plan_phases, set_trainable

METRIC_KEYS = {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"}


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    # 10 per class: a 24 / 6 split, batches of 8
    return make_dataset(tmp_path_factory.mktemp("ft") / "colours", {"red": 10, "blue": 10, "green": 10})


def finetune(dataset, events=None, expect="completed", **kw):
    cfg = TrainConfig(**{"dataset": str(dataset), "img_size": 32, "epochs": 2, "batch_size": 8, "workers": 0,
                         "lr": 1e-2, "augment": "none", **kw})
    final = run_job("train", lambda ctx: train(cfg, ctx), events.append if events is not None else lambda e: None)
    if expect == "completed":
        assert isinstance(final, JobFinished) and final.reason == "completed", final
        return final.result
    return final


def pretrained_state(n_classes=3):
    model, _ = build_classifier("efficientnet_lite0", n_classes)
    return model.state_dict()


def stage_keys(state, prefixes):
    return [k for k in state if any(k.startswith(p) for p in prefixes)]


@pytest.mark.parametrize("name, first, last, count", [
    ("efficientnet_lite0", "stem", "head conv", 9),
    ("resnet18", "stem", "layer4", 5),
    ("vgg16", "block1", "fc6-fc7", 6),
    ("mobilenet_v2", "features[0]", "features[18]", 19),
    ("mobilenet_v3_small", "features[0]", "classifier", 14),
    ("efficientnet_b0", "features[0]", "features[8]", 9),
    ("convnext_tiny", "features[0]", "classifier", 9),
])
def test_stages_are_the_backbones_own_and_cover_every_parameter(name, first, last, count):
    with torch.device("meta"):
        backbone, _ = split_head(build_architecture(get_spec(name)))
    stages = backbone_stages(backbone)
    assert (stages[0].name.split(" ")[0], stages[-1].name, len(stages)) == (first, last, count)
    ids = [id(p) for s in stages for p in s.parameters()]
    assert len(ids) == len(set(ids))  # no parameter in two stages
    assert set(ids) == {id(p) for p in backbone.parameters()}  # and none left out


def test_generic_fallback_uses_top_level_children():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    assert [s.name for s in backbone_stages(model)] == ["0", "2"]


def test_full_mode_plan_and_discriminative_rates():
    cfg = TrainConfig(dataset="x", mode="full", epochs=5, freeze_epochs=2, lr=1e-3).validate()
    frozen, unfrozen = plan_phases(cfg, 9)
    assert (frozen.first, frozen.last, frozen.trainable) == (1, 2, 0)
    assert (unfrozen.first, unfrozen.last, unfrozen.trainable, unfrozen.lr) == (3, 5, 9, 5e-4)
    model, _ = build_classifier("efficientnet_lite0", 3, "random")
    stages = backbone_stages(model.backbone)
    trainable = set_trainable(model, stages, len(stages))
    groups = param_groups(model, stages, trainable, 1e-3, 0.01)
    rates = [g["lr"] for g in groups if "no decay" not in g["name"]]
    assert rates == sorted(rates) and rates[-1] == 1e-3 and rates[0] == pytest.approx(1e-5)  # stem: 1/100
    assert all(g["weight_decay"] == 0 for g in groups if "no decay" in g["name"])  # biases and norms
    with pytest.raises(ConfigError, match="--freeze-epochs 5 leaves no epoch"):
        TrainConfig(dataset="x", mode="full", epochs=5, freeze_epochs=5).validate()


def test_augmentation_presets_give_uint8_crops():
    from PIL import Image

    img = Image.new("RGB", (80, 60), (200, 10, 10))
    prep = Preprocessing(crop_size=32, resize_size=37, interpolation="bilinear")
    assert train_transform("none", prep) is None
    for preset in ("light", "strong"):
        x = train_transform(preset, prep)(img)
        assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 32, 32)


def test_the_collate_fn_drops_broken_files_and_keeps_a_batch_that_has_nothing_else():
    """A file that broke after the scan leaves its batch in the loader (named, with its reason); a batch whose
    every file broke keeps its blanks, marked unusable: under torchrun that rank must still run a step."""
    collate = DropBadFiles(torch.tensor([0, 1, 2], dtype=torch.long), ["a.jpg", "b.jpg", "c.jpg"])

    def image(value):
        return torch.full((3, 4, 4), value, dtype=torch.uint8)

    batch = collate([(image(1), 0, ""), (image(2), 1, "cannot decode"), (image(3), 2, "")])
    assert batch.usable and batch.failed == {"b.jpg": "cannot decode"}
    assert batch.index.tolist() == [0, 2] and batch.labels.tolist() == [0, 2]
    assert batch.images[:, 0, 0, 0].tolist() == [1, 3]
    batch = collate([(image(0), 1, "truncated"), (image(0), 2, "truncated")])
    assert not batch.usable and batch.images.shape[0] == 2 and batch.labels.tolist() == [1, 2]
    assert batch.failed == {"b.jpg": "truncated", "c.jpg": "truncated"}


def test_head_mode_trains_the_head_only_and_batchnorm_statistics_never_move(colours):
    events = []
    r = finetune(colours, events, mode="head", augment="light", tensorboard=True)
    before = pretrained_state()
    after = load_checkpoint(f"{r['run_dir']}/last.pt")["model"]
    backbone = stage_keys(before, ["backbone."])
    assert any(k.endswith("running_mean") for k in backbone)
    for k in backbone:  # weights and running statistics alike
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["head.weight"], after["head.weight"])
    # events: per-batch progress and one EpochEnded per epoch with the contract's metrics
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2] and all(set(e.metrics) == METRIC_KEYS for e in epochs)
    assert any(isinstance(e, BatchEnded) for e in events)
    assert list((Path(r["run_dir"]) / "tensorboard").glob("events.out.tfevents*"))  # --tensorboard
    report = read_json(f"{r['run_dir']}/report.json")
    assert report["checkpoint"] == "best.pt" and report["n"] == 6


def test_partial_mode_trains_the_named_last_stages(colours):
    events = []
    r = finetune(colours, events, mode="partial", unfreeze=1, lr=1e-3)
    before, after = pretrained_state(), load_checkpoint(f"{r['run_dir']}/last.pt")["model"]
    trained = stage_keys(before, ["backbone._conv_head", "backbone._bn1"])
    frozen = stage_keys(before, ["backbone._blocks.", "backbone._conv_stem", "backbone._bn0"])
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # running stats of frozen BN included
    # trained stages learn BatchNorm's scale and shift but keep ImageNet's statistics (no --train-bn)
    assert not torch.equal(before["backbone._bn1.weight"], after["backbone._bn1.weight"])
    assert torch.equal(before["backbone._bn1.running_mean"], after["backbone._bn1.running_mean"])
    logs = " ".join(e.text for e in events if isinstance(e, LogLine))
    assert "training the last 1 stage(s) (head conv)" in logs


def test_full_mode_freezes_then_unfreezes_everything(colours):
    seen = {}

    def sink(e):
        if isinstance(e, EpochEnded):  # last.pt is written before the epoch's event
            seen[e.epoch] = load_checkpoint(f"{run_dir[0]}/last.pt")["model"]["backbone._conv_stem.weight"]
        if type(e).__name__ == "JobStarted" and e.run_dir:
            run_dir.append(e.run_dir)

    run_dir = []
    cfg = TrainConfig(dataset=str(colours), mode="full", img_size=32, epochs=2, freeze_epochs=1, batch_size=8,
                      workers=0, lr=1e-2, augment="none")
    final = run_job("train", lambda ctx: train(cfg, ctx), sink)
    assert isinstance(final, JobFinished), final
    stem = pretrained_state()["backbone._conv_stem.weight"]
    assert torch.equal(seen[1], stem) and not torch.equal(seen[2], stem)


def test_early_stopping_after_patience(colours, monkeypatch):
    real = loop.evaluate

    def no_progress(*args):  # the same validation loss every epoch: never an improvement after the first
        loss, acc, logits, keep = real(*args)
        return 1.0, 0.5, logits, keep

    monkeypatch.setattr(finetune_module, "evaluate", no_progress)
    r = finetune(colours, mode="head", epochs=6, patience=2)
    assert r["early_stopped"] and r["epochs"] == 3 and r["best_epoch"] == 1
    assert len(read_metrics(r["run_dir"])) == 3


def test_a_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(colours, monkeypatch):
    real = loop.to_input
    calls = []

    def poisoned(x, step):
        calls.append(1)
        x = real(x, step)
        return x * float("nan") if len(calls) > 4 else x  # 3 train steps + 1 validation batch per epoch

    monkeypatch.setattr(loop, "to_input", poisoned)
    events = []
    final = finetune(colours, events, expect="failed", mode="head", epochs=3)
    assert isinstance(final, JobFailed) and final.title == "Training diverged"
    msg = str(final.error)
    assert "nan at epoch 2, step 1/3" in msg and "--lr" in msg and "epoch 1" in msg
    run_dir = next(e.run_dir for e in events if type(e).__name__ == "JobStarted" and e.run_dir)
    assert load_checkpoint(f"{run_dir}/last.pt")["epoch"] == 1


def test_tensorboard_missing_is_a_clear_error(colours, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    final = finetune(colours, expect="failed", mode="head", tensorboard=True)
    assert isinstance(final, JobFailed) and "pip install 'tlbench[tensorboard]'" in str(final.error)


def test_sgd_label_smoothing_clipping_and_strong_augmentation_run(colours):
    r = finetune(colours, mode="partial", epochs=1, optimizer="sgd", label_smoothing=0.1, grad_clip=1.0,
                 augment="strong", weight_decay=1e-4, workers=1, train_bn=True)
    assert r["epochs"] == 1 and 0 <= r["val_acc"] <= 1
    before, after = pretrained_state(), load_checkpoint(f"{r['run_dir']}/last.pt")["model"]
    assert not torch.equal(before["backbone._bn1.running_mean"], after["backbone._bn1.running_mean"])
    assert json.loads(open(f"{r['run_dir']}/config.json").read())["optimizer"] == "sgd"


@pytest.mark.slow
def test_demo_digits_full_fine_tuning_reaches_the_bar():
    """The issue's bar, >= 0.97, as cheaply as it allows: 48 px (8 px digits carry nothing more), 5 epochs;
    measured 0.975 (0.967 after 3 epochs, 0.961 at 64 px)."""
    r = finetune(DEMO, mode="full", img_size=48, epochs=5, freeze_epochs=0, batch_size=32, lr=3e-3,
                 augment="none", workers=1)
    assert r["val_acc"] >= 0.97, r


@pytest.mark.slow
@pytest.mark.skipif(not CATS_DOGS.exists(), reason="../shared/data/cats-dogs-dev is not on this machine")
def test_cats_dogs_full_fine_tuning_keeps_the_pretrained_features():
    """At a small input size (96 px) full fine-tuning ends no lower than the probe (measured: 0.917 vs 0.854;
    at 160 px 0.979 vs 0.958). SGD: on 192 images AdamW's unfrozen phase is the less gentle of the two."""
    probe = finetune(CATS_DOGS, mode="probe", img_size=96, epochs=30, lr=1e-3, batch_size=32, workers=1)
    full = finetune(CATS_DOGS, mode="full", img_size=96, epochs=6, freeze_epochs=4, lr=1e-2, batch_size=16,
                    optimizer="sgd", augment="light", workers=1)
    assert full["val_acc"] >= probe["val_acc"], (full, probe)


@pytest.mark.parametrize("args, needle", [
    (["--mode", "full", "--epochs", "2", "--freeze-epochs", "2"], "--freeze-epochs 2 leaves no epoch"),
    (["--optimizer", "adam"], "invalid choice: 'adam'"),
    (["--augment", "heavy"], "invalid choice: 'heavy'"),
])
def test_cli_rejects_bad_fine_tuning_flags(colours, args, needle):
    import os
    import subprocess

    from helpers.data import ROOT

    out = subprocess.run([sys.executable, "-m", "tui.main", "train", str(colours), *args, "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert "error" in json.loads(out.stdout)


def test_paused_time_is_not_training_time(colours, monkeypatch):
    """A pause of 1000 s in epoch 1 stays out of the epoch's seconds, its images/s and the run's durations,
    and is recorded as paused_seconds."""
    cfg = TrainConfig(dataset=str(colours), mode="head", img_size=32, epochs=2, batch_size=8, workers=0, lr=1e-2,
                      augment="none")
    r = paused_job(lambda ctx: train(cfg, ctx), monkeypatch,
                   lambda e: isinstance(e, BatchEnded) and e.epoch == 1)
    first, second = read_metrics(r["run_dir"])
    assert first["paused_seconds"] >= 1000 and second["paused_seconds"] == 0
    assert first["seconds"] < 1000 and first["images_per_s"] > 24 / 1000
    assert r["paused_seconds"] >= 1000 and r["train_seconds"] < 1000 and r["seconds"] < 1000
