"""Checkpoints and resume: a run stopped and resumed equals the uninterrupted run (CPU, fixed seed), and a
real SIGTERM to `tlbench train` saves last.pt, exits cleanly, and --resume finishes the run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers.data import ROOT, make_dataset

from engine.core.checkpoints import load_checkpoint
from engine.core.errors import RunError
from engine.core.events import BatchEnded, EpochEnded, JobFinished, JobStarted
from engine.core.jobs import JobContext, JobControl, run_job
from engine.core.runs import read_metrics
from engine.runtime.distributed import SINGLE
from engine.train.config import TrainConfig
from engine.train.job import resume, train
from engine.train.loop import SyncSchedule
from engine.train.state import TrainState


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("rs") / "colours", {"red": 10, "blue": 10, "green": 10})


# bf16 autocast runs on any CPU, slowly: its runs use SqueezeNet 1.1 (random weights), 0.07 s a step here
BF16 = {"precision": "bf16", "backbone": "squeezenet1_1", "weights": "random"}


def config(dataset, workers=0, precision="fp32"):
    # full mode crosses the freeze -> unfreeze boundary; light augmentation is drawn per sample (seeded by
    # seed, epoch and sample), so the resumed half-epoch draws what the uninterrupted one did, with DataLoader
    # workers too (each worker used to hold one RNG per epoch, and a resumed epoch dealt its batches to
    # them differently). The precision is fixed: the promise holds in each (and auto's choice is recorded).
    return TrainConfig(dataset=str(dataset), mode="full", img_size=32, epochs=3, freeze_epochs=1, batch_size=8,
                       workers=workers, lr=3e-3, augment="light", seed=7,
                       **(BF16 if precision == "bf16" else {"precision": precision}))


def run_until(dataset, stop_when, workers=0, precision="fp32"):
    """Run, asking for a stop when `stop_when(event)` is true; returns (final event, run dir)."""
    control = JobControl()
    seen = {}

    def sink(e):
        if isinstance(e, JobStarted) and e.run_dir:
            seen["run_dir"] = e.run_dir
        if stop_when(e):
            control.stop()

    final = run_job("train", lambda ctx: train(config(dataset, workers, precision), ctx), sink, control)
    return final, seen["run_dir"]


def test_train_state_round_trip_and_optimizer_states_wait_for_their_phase():
    """TrainState.state_dict() -> load_state_dict(): the weights, counters and RNG come back at once; the
    optimizer's state (here SGD's momentum) only into the phase it was saved in."""
    def model_and_optimizer(seed):
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)

    model, optimizer, scheduler = model_and_optimizer(0)
    state = TrainState(model, torch.amp.GradScaler("cpu", enabled=False))
    state.attach(1, optimizer, scheduler)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    state.epoch, state.step, state.bad_epochs, state.skipped = 2, 3, 1, {"x.jpg": "truncated"}
    state.partial = {"loss": 1.5, "correct": 2.0, "seen": 4.0, "seconds": 0.5}
    state.best = {"val_acc": 0.75, "val_loss": 0.5, "epoch": 1}
    saved = state.state_dict(SINGLE)
    after_save = torch.rand(3)

    for phase, momentum_restored in ((1, True), (2, False)):
        model2, optimizer2, scheduler2 = model_and_optimizer(1)
        back = TrainState(model2, torch.amp.GradScaler("cpu", enabled=False))
        back.load_state_dict(saved, SINGLE, seed=0)
        assert torch.equal(torch.rand(3), after_save)  # the RNG continues where the saved run was
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
        assert (back.epoch, back.step, back.bad_epochs, back.phase) == (2, 3, 1, -1)
        assert (back.partial, back.best, back.skipped) == (state.partial, state.best, state.skipped)
        back.attach(phase, optimizer2, scheduler2)
        assert bool(optimizer2.state) == momentum_restored
        assert scheduler2.last_epoch == (1 if momentum_restored else 0)


@pytest.mark.parametrize("where, workers, precision", [("epoch boundary", 0, "fp32"), ("mid-epoch", 0, "fp32"),
                                                        ("mid-epoch", 2, "fp32"), ("epoch boundary", 0, "bf16"),
                                                        ("mid-epoch", 0, "bf16")])
def test_stopped_and_resumed_equals_uninterrupted(colours, monkeypatch, where, workers, precision):
    monkeypatch.setattr(JobContext, "MAX_PROGRESS_PER_S", 1e9)  # a BatchEnded at every sync point
    monkeypatch.setattr(SyncSchedule, "TARGET_S", 0.0)  # and a sync point at every step
    whole, whole_dir = run_until(colours, lambda e: False, workers, precision)
    assert whole.reason == "completed"

    if where == "epoch boundary":
        stop = lambda e: isinstance(e, EpochEnded) and e.epoch == 1  # noqa: E731 - then the new phase starts
    else:
        stop = lambda e: isinstance(e, BatchEnded) and e.epoch == 2 and e.step == 2  # noqa: E731
    stopped, run_dir = run_until(colours, stop, workers, precision)
    assert isinstance(stopped, JobFinished) and stopped.reason == "stopped"
    ckpt = load_checkpoint(f"{run_dir}/last.pt")
    assert (ckpt["epoch"], ckpt["step"]) == ((1, 0) if where == "epoch boundary" else (1, 2))
    for key in ("config", "model", "optimizer", "scheduler", "scaler", "rng", "classes", "metrics"):
        assert key in ckpt, key

    resumed = run_job("resume", lambda ctx: resume(run_dir, ctx))
    assert isinstance(resumed, JobFinished) and resumed.reason == "completed", resumed
    a, b = read_metrics(whole_dir), read_metrics(run_dir)
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-6), (ra["epoch"], k)
    wa, wb = load_checkpoint(f"{whole_dir}/last.pt")["model"], load_checkpoint(f"{run_dir}/last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-4, atol=1e-6), k
    assert json.loads(open(f"{run_dir}/config.json").read())["resumed"]
    assert json.loads(open(f"{run_dir}/config.json").read())["precision_resolved"] == precision
    assert (tmp := f"{run_dir}/report.json") and os.path.exists(tmp)


def test_resume_refuses_a_finished_run(colours):
    final, run_dir = run_until(colours, lambda e: False)
    with pytest.raises(RunError, match="already finished"):
        resume(run_dir, JobContext(lambda e: None, JobControl()))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_signals_save_last_pt_exit_cleanly_and_resume_finishes(tmp_path, sig):
    """Ctrl+C, kill and a dropped SSH session all stop the job at the next step with its state saved."""
    data = make_dataset(tmp_path / "d", {"red": 20, "blue": 20})
    cmd = [sys.executable, "-m", "tui.main", "train", str(data), "--mode", "head", "--epochs", "8", "--img-size",
           "32", "--batch-size", "4", "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        for line in proc.stderr:  # wait until training is under way
            if line.startswith("epoch 1/8"):
                break
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    result = json.loads(out)
    assert result["stopped"] is True
    run_dir = result["run_dir"]
    ckpt = load_checkpoint(f"{run_dir}/last.pt")
    assert 1 <= ckpt["epoch"] < 8
    if sig != signal.SIGTERM:
        return  # resuming is the same for every signal; once is enough

    done = subprocess.run([sys.executable, "-m", "tui.main", "train", "--resume", run_dir, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed from last.pt" in done.stderr
    assert json.loads(done.stdout)["epochs"] == 8
    assert [r["epoch"] for r in read_metrics(run_dir)] == list(range(1, 9))


def test_a_resumed_run_counts_the_time_of_every_session(colours):
    """Issue 24 item 6: summary.json's seconds are the whole run's (the stopped session's epochs too), not only
    the resumed part's; the curves (metrics.jsonl) hold every epoch."""
    stopped, run_dir = run_until(colours, lambda e: isinstance(e, EpochEnded) and e.epoch == 1)
    assert isinstance(stopped, JobFinished) and stopped.reason == "stopped"
    before = sum(r["seconds"] for r in read_metrics(run_dir))
    assert before > 0
    resumed = run_job("resume", lambda ctx: resume(run_dir, ctx))
    assert isinstance(resumed, JobFinished) and resumed.reason == "completed", resumed
    summary = json.loads(open(f"{run_dir}/summary.json").read())
    assert summary["earlier_seconds"] == pytest.approx(before, abs=1e-3) and summary["finished"]
    assert summary["seconds"] == pytest.approx(summary["session_seconds"] + before, abs=2e-3)
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2, 3]
