"""The model under attack is loaded once and reused while its files are unchanged (each attack reloaded it:
7.9 s for a 10-step PGD whose steps took 0.5 s), never changed by a job, and reloaded when it changes."""

from __future__ import annotations

import os

import pytest
import torch
from helpers.data import make_dataset, write_image

import engine.adversarial.target
from engine.adversarial.attack_job import AttackParams, attack_job
from engine.adversarial.dream_job import dream_job
from engine.adversarial.dreams import DreamParams
from engine.adversarial.target import TARGET_CACHE_SIZE, clear_target_cache, load_target_model
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.train.config import TrainConfig
from engine.train.job import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("target-run")
    data = make_dataset(base / "colours", {"red": 4, "blue": 4})
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("TLBENCH_CACHE", "cache"), ("TORCH_HOME", "torch")):
            mp.setenv(var, str(base / sub))
        mp.setenv("TLBENCH_OFFLINE", "1")
        cfg = TrainConfig(dataset=str(data), img_size=32, epochs=2, seed=1, workers=0, runs_dir=str(base / "runs"))
        final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result["run_dir"]


@pytest.fixture
def builds(monkeypatch):
    """Counts the models actually built: runs (engine.models.loading.load_run_model) and backbones."""
    clear_target_cache()
    counted = {"run": 0, "backbone": 0}
    load_run_model, build_classifier = engine.models.loading.load_run_model, engine.models.build.build_classifier

    def counting_load(*args, **kwargs):
        counted["run"] += 1
        return load_run_model(*args, **kwargs)

    def counting_build(*args, **kwargs):
        counted["backbone"] += 1
        return build_classifier(*args, **kwargs)

    monkeypatch.setattr(engine.adversarial.target, "load_run_model", counting_load)
    monkeypatch.setattr(engine.adversarial.target, "build_classifier", counting_build)
    yield counted
    clear_target_cache()


def test_a_second_load_reuses_the_model(run_dir, builds):
    first = load_target_model(run_dir, device="cpu")
    again = load_target_model(run_dir, device="cpu", img_size=48)  # another input size: the same model
    assert builds["run"] == 1 and again.model is first.model
    assert again.prep.crop_size == 48 and first.prep.crop_size == 32
    again.record.raw["classes"].append("mutated")  # what a caller does with its record stays its own
    assert load_target_model(run_dir, device="cpu").record.to_dict()["classes"] == ["blue", "red"]
    lite = load_target_model(backbone="efficientnet_lite0", device="cpu")
    assert load_target_model(backbone="efficientnet_lite0", device="cpu").model is lite.model
    assert builds["backbone"] == 1 and len(lite.classes) == 1000


def test_a_changed_checkpoint_is_reloaded(run_dir, builds):
    first = load_target_model(run_dir, device="cpu")
    best = os.path.join(run_dir, "best.pt")
    ckpt = torch.load(best, weights_only=True)
    saved = {k: v.clone() for k, v in ckpt["model"].items()}
    try:
        ckpt["model"] = {k: v * 2 if v.is_floating_point() else v for k, v in ckpt["model"].items()}
        torch.save(ckpt, best)
        os.utime(best, ns=(os.stat(best).st_atime_ns, os.stat(best).st_mtime_ns + 10**9))
        changed = load_target_model(run_dir, device="cpu")
        assert builds["run"] == 2 and changed.model is not first.model
        assert torch.equal(changed.model.head.weight, 2 * first.model.head.weight)
    finally:
        ckpt["model"] = saved
        torch.save(ckpt, best)


def test_the_cache_keeps_the_last_models_only(run_dir, builds):
    load_target_model(run_dir, device="cpu")
    load_target_model(backbone="efficientnet_lite0", device="cpu")
    assert TARGET_CACHE_SIZE == 2
    load_target_model(backbone="efficientnet_lite0", device="meta")  # a third: the run's model goes
    assert builds == {"run": 1, "backbone": 2}
    load_target_model(backbone="efficientnet_lite0", device="cpu")  # still there
    load_target_model(run_dir, device="cpu")
    assert builds == {"run": 2, "backbone": 2}


def test_jobs_never_change_the_shared_model(run_dir, builds, tmp_path):
    tm = load_target_model(run_dir, device="cpu")
    state = {k: v.clone() for k, v in tm.model.state_dict().items()}
    image = str(write_image(tmp_path / "red.png", (200, 40, 40)))
    attack = AttackParams(images=[image], run_dir=run_dir, eps=0.1, steps=2, out=str(tmp_path / "a"), device="cpu")
    dream = DreamParams(target="red", run_dir=run_dir, steps=2, out=str(tmp_path / "d"), device="cpu")
    for name, job in (("attack", lambda ctx: attack_job(attack, ctx)), ("dream", lambda ctx: dream_job(dream, ctx))):
        final = run_job(name, job)
        assert isinstance(final, JobFinished) and final.reason == "completed", final
    assert builds["run"] == 1  # both jobs used the cached model
    after = load_target_model(run_dir, device="cpu").model
    assert after is tm.model and not after.training
    assert not any(p.requires_grad for p in after.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in after.modules())
    assert all(torch.equal(v, state[k]) for k, v in after.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in after.modules())  # folding happened on copies
