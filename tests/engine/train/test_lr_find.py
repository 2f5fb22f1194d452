"""lr-find applies the rate it logs (each parameter group at its planned share of it), whatever the phase's
scheduler did to the optimizer first, and its suggestion does not depend on that scheduler."""

import json

import pytest
import torch
from helpers.data import make_dataset
from torch.optim.optimizer import register_optimizer_step_pre_hook

import engine.train.finetune as finetune
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.train.config import TrainConfig
from engine.train.lr_find import lr_find


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("lr") / "colours", {"red": 8, "blue": 8})


def run_lr_find(dataset, steps=12, precision="fp32"):
    # partial mode, the last stage unfrozen: the head's groups at the logged rate, the stage's at a tenth;
    # bf16 (slow on a CPU without bf16 instructions) on SqueezeNet 1.1
    tiny = {"backbone": "squeezenet1_1", "weights": "random"} if precision == "bf16" else {}
    cfg = TrainConfig(dataset=str(dataset), mode="partial", unfreeze=1, img_size=32, batch_size=4, workers=0,
                      augment="none", seed=1, precision=precision, **tiny)
    final = run_job("lr-find", lambda ctx: lr_find(cfg, ctx, start_lr=1e-5, end_lr=1.0, steps=steps))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return json.loads(open(final.result["data"]).read())


def test_the_rate_applied_at_each_step_is_the_rate_logged(colours):
    applied = []

    def record(optimizer, args, kwargs):
        applied.append({g["name"]: g["lr"] for g in optimizer.param_groups})

    handle = register_optimizer_step_pre_hook(record)
    try:
        data = run_lr_find(colours)
    finally:
        handle.remove()
    logged = data["lr"]
    assert len(logged) >= 10 and len(applied) >= len(logged)
    share = {"head": 1.0, "head (no decay)": 1.0, "head conv": 0.1, "head conv (no decay)": 0.1}
    for lr, groups in zip(logged, applied):
        assert set(groups) == set(share)
        for name, value in groups.items():
            # OneCycleLR had set every group to max_lr/25 before the first step; the test used to apply that
            assert value == pytest.approx(lr * share[name], rel=1e-9), (name, lr, value)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_suggestion_does_not_depend_on_the_phase_scheduler(colours, monkeypatch, precision):
    with_one_cycle = run_lr_find(colours, precision=precision)
    monkeypatch.setattr(finetune, "make_scheduler",
                        lambda optimizer, phase, total: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0))
    constant = run_lr_find(colours, precision=precision)
    assert constant["lr"] == with_one_cycle["lr"]
    assert constant["loss"] == pytest.approx(with_one_cycle["loss"], rel=1e-6)
    assert constant["suggested_lr"] == with_one_cycle["suggested_lr"]


@pytest.mark.parametrize("mode", ["probe", "auto"])
def test_modes_whose_head_is_not_trained_by_sgd_are_refused_before_any_run(colours, mode, tmp_path):
    from engine.core.errors import ConfigError

    cfg = TrainConfig(dataset=str(colours), mode=mode, runs_dir=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match=f"not --mode {mode}"):
        lr_find(cfg, None)  # type: ignore[arg-type]  # refused before the context is used
    assert not (tmp_path / "runs").exists()
