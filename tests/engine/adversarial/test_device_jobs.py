"""The attack, dream, robustness, eval, predict and extraction jobs, checked on a CPU for the bugs that would
crash them on a GPU or on Apple's MPS (see tests/device_discipline.py): their model preparation runs on meta
models, each job runs under DeviceDiscipline, and an attack and a dream run under bf16 autocast."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from device_discipline import DeviceDiscipline, meta_model
from helpers.data import make_dataset
from torch import nn

import engine.adversarial.attack_job
import engine.adversarial.dream_job
import engine.evaluate.evaluation
from engine.adversarial.attack_job import AttackParams, attack_job
from engine.adversarial.common import AutocastForward, fast_copy
from engine.adversarial.dream_job import dream_job
from engine.adversarial.dreams import DreamParams
from engine.adversarial.robustness import RobustnessParams, robustness_job
from engine.adversarial.target import TargetModel, load_target_model
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.evaluate.evaluation import evaluate_run
from engine.features.cache import extract
from engine.models.build import build_classifier
from engine.models.fast import fold_batchnorm, inference_copy
from engine.models.loading import load_run_model
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import train


def lite0_on_meta():
    return meta_model(lambda: build_classifier("efficientnet_lite0", 3, "random")[0])


def test_inference_copy_of_a_meta_model_stays_on_meta_and_leaves_the_model_alone():
    model = lite0_on_meta()
    assert model.training
    fast = inference_copy(model, torch.device("meta"), 64)
    assert model.training  # the caller's mode is the caller's
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # and its layers are not folded
    assert not fast.training and all(p.device.type == "meta" and not p.requires_grad for p in fast.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.backbone.modules())
    assert fast(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 3)


def test_inference_copy_leaves_the_random_stream_and_the_mode_as_they_were():
    model = build_classifier("efficientnet_lite0", 3, "random")[0]
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    fast = inference_copy(model, torch.device("cpu"), 32)
    assert torch.equal(torch.rand(3), expected)  # a seeded run extracts features, then trains its head
    assert model.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(fast(x), copy.deepcopy(model).eval()(x), atol=1e-4)  # folded, and still equal


def test_fold_batchnorm_runs_on_a_meta_model():
    model = lite0_on_meta().eval()
    assert fold_batchnorm(model.backbone) > 0
    assert all(p.device.type == "meta" for p in model.parameters())


def test_fast_copy_of_a_meta_target_with_autocast():
    tm = TargetModel(lite0_on_meta(), ["a", "b", "c"], {"crop_size": 64}, "meta")
    plain = fast_copy(tm, torch.device("meta"), 64)
    assert plain(torch.empty(1, 3, 64, 64, device="meta")).shape == (1, 3)
    wrapped = fast_copy(tm, torch.device("meta"), 64, torch.bfloat16)
    assert isinstance(wrapped, AutocastForward) and wrapped.dtype == torch.bfloat16
    assert all(p.device.type == "meta" for p in wrapped.parameters())


# ------------------------------------------------------------------------------------ the jobs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A probe run at 32 px, its models built (and the targets' cache warmed) outside any discipline: building
    a model on the CPU and moving it is the normal way, and engine.models.classifier is checked elsewhere."""
    base = tmp_path_factory.mktemp("device-run")
    data = make_dataset(base / "colours", {"red": 5, "blue": 5})
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("TLBENCH_CACHE", "cache"), ("TORCH_HOME", "torch")):
            mp.setenv(var, str(base / sub))
        mp.setenv("TLBENCH_OFFLINE", "1")
        cfg = TrainConfig(dataset=str(data), img_size=32, epochs=2, lr=1e-2, seed=1, workers=0,
                          runs_dir=str(base / "runs"))
        final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    run_dir = final.result["run_dir"]
    model, record = load_run_model(run_dir, "cpu")
    return {"run_dir": run_dir, "data": data, "model": model, "record": record,
            "images": sorted(str(p) for p in data.rglob("*.png"))}


@pytest.fixture
def warm(run):
    """The targets' cache holds the run's model and lite0's ImageNet model (jobs reuse them)."""
    load_target_model(run["run_dir"], device="cpu")
    load_target_model(backbone="efficientnet_lite0", device="cpu")
    return run


def disciplined(name, job):
    with DeviceDiscipline() as d:
        final = run_job(name, job)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    d.check()
    return final.result


@pytest.mark.parametrize("kw", [
    {"method": "pgd", "eps": 0.1, "steps": 2, "random_start": True},
    {"method": "pgd", "norm": "l2", "eps": 0.5, "steps": 2, "random_start": True, "target": "blue"},
    {"method": "fgsm", "eps": 0.1},
    {"method": "gd", "steps": 2, "tv_weight": 0.01, "target": "blue", "eval_on": "efficientnet_lite0"},
], ids=["pgd-linf-random-start", "pgd-l2-random-start-targeted", "fgsm", "gd-tv-eval-on"])
def test_attack_job_under_device_discipline(warm, tmp_path, kw):
    params = AttackParams(images=warm["images"][:1], run_dir=warm["run_dir"], out=str(tmp_path), device="cpu", **kw)
    result = disciplined("attack", lambda ctx: attack_job(params, ctx))
    assert result["attacked"] == 1 and result["precision"] == "fp32"


def test_robustness_job_under_device_discipline(warm):
    params = RobustnessParams(run_dir=warm["run_dir"], eps=[0, 0.1], steps=2, random_start=True, batch_size=4,
                              device="cpu", workers=0)
    result = disciplined("robustness", lambda ctx: robustness_job(params, ctx))
    assert result["images"] > 0 and result["eps"] == [0.0, 0.1]


@pytest.mark.parametrize("kw", [
    {"recipe": "robust", "img_size": 33},  # odd: the Fourier grid's other branch
    {"recipe": "lesson", "jitter": 2},
    {"recipe": "robust", "backbone": "efficientnet_lite0", "target": "tabby", "img_size": 64},
    {"recipe": "maco", "img_size": 48, "crops": 2},  # the default: phase-only spectrum, crops in one batch
], ids=["robust-run", "lesson-run", "robust-imagenet", "maco-run"])
def test_dream_job_under_device_discipline(warm, tmp_path, kw):
    kw = {"target": "red", "run_dir": None if "backbone" in kw else warm["run_dir"], **kw}
    params = DreamParams(steps=2, preview_every=1, out=str(tmp_path), device="cpu", **kw)
    result = disciplined("dream", lambda ctx: dream_job(params, ctx))
    assert result["steps"] == 2 and result["precision"] == "fp32"


def test_eval_job_under_device_discipline(run, monkeypatch):
    monkeypatch.setattr(engine.evaluate.evaluation, "load_run_model",
                        lambda *a, **k: (copy.deepcopy(run["model"]), copy.deepcopy(run["record"])))
    result = disciplined("eval", lambda ctx: evaluate_run(run["run_dir"], None, ctx, device="cpu", workers=0))
    assert result["n"] > 0


def test_predict_and_extraction_under_device_discipline(run):
    with DeviceDiscipline() as d:
        rows = predict_paths(run["model"], run["record"], run["images"][:3] + ["/nonexistent.png"])
        feats, errors, _ = extract(run["model"], run["images"], run["record"].preprocessing,
                                   torch.device("cpu"), batch_size=4, workers=0)
    d.check()
    assert [len(r.get("predictions", [])) for r in rows] == [2, 2, 2, 0]
    assert feats.shape == (len(run["images"]), 1280) and not errors


# ------------------------------------------------------------------------------------ autocast on the CPU


@pytest.fixture
def seen_dtypes(monkeypatch):
    """What the jobs' models saw: the dtype of their input image (and whether it wanted a gradient), and the
    dtype the first convolution computed in."""
    seen = {"input": [], "conv": []}
    real = engine.adversarial.attack_job.fast_copy

    def spying_fast_copy(*args, **kwargs):
        model = real(*args, **kwargs)
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(lambda m, i, out: seen["conv"].append(out.dtype))
        model.register_forward_pre_hook(lambda m, i: seen["input"].append((i[0].dtype, i[0].requires_grad)))
        return model

    monkeypatch.setattr(engine.adversarial.attack_job, "fast_copy", spying_fast_copy)
    monkeypatch.setattr(engine.adversarial.dream_job, "fast_copy", spying_fast_copy)
    return seen


def test_attack_under_bf16_autocast_keeps_the_image_and_its_gradient_fp32(warm, tmp_path, seen_dtypes):
    params = AttackParams(images=warm["images"][:1], run_dir=warm["run_dir"], method="pgd", eps=0.1, steps=3,
                          random_start=True, out=str(tmp_path), device="cpu", precision="bf16")
    with DeviceDiscipline() as d:
        final = run_job("attack", lambda ctx: attack_job(params, ctx))
    d.check()
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    r = final.result
    assert r["precision"] == "bf16" and r["results"][0]["linf"] <= 0.1 + 1e-6
    assert torch.bfloat16 in seen_dtypes["conv"]  # the autocast branch really ran
    assert (torch.float32, True) in seen_dtypes["input"]  # the adversarial image: fp32, differentiated
    assert {dtype for dtype, _ in seen_dtypes["input"]} == {torch.float32}


def test_dream_under_bf16_autocast(warm, tmp_path, seen_dtypes):
    params = DreamParams(target="blue", run_dir=warm["run_dir"], steps=3, out=str(tmp_path), device="cpu",
                         precision="bf16", crops=2)
    result = disciplined("dream", lambda ctx: dream_job(params, ctx))
    assert result["precision"] == "bf16" and len(result["target_prob_per_step"]) == 3
    assert torch.bfloat16 in seen_dtypes["conv"]
    assert (torch.float32, True) in seen_dtypes["input"]


def test_fp32_is_the_cpu_default(warm, tmp_path, seen_dtypes):
    params = DreamParams(target="blue", run_dir=warm["run_dir"], steps=1, out=str(tmp_path), device="cpu", crops=2)
    assert run_job("dream", lambda ctx: dream_job(params, ctx)).result["precision"] == "fp32"
    assert set(seen_dtypes["conv"]) == {torch.float32}


def test_cli_precision_flag(warm, tmp_path, capfd):
    from engine.cli import main

    code = main(["dream", warm["run_dir"], "--target", "red", "--steps", "1", "--out", str(tmp_path),
                 "--device", "cpu", "--precision", "bf16", "--json"])
    assert code == 0 and json.loads(capfd.readouterr().out)["precision"] == "bf16"
    with pytest.raises(SystemExit) as exit_:
        main(["attack", warm["run_dir"], warm["images"][0], "--precision", "fp8"])
    assert exit_.value.code == 2 and "fp8" in capfd.readouterr().err
