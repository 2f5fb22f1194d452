"""status.json: the engine records whether a run is running, done, stopped or failed (and why), and the
workbench's Runs screen believes it — a run that failed before its first epoch says "failed" with its error,
and a "running" run whose process is gone reads as stopped."""

import json
import os
import subprocess
import sys

import pytest

import engine.train.job
from engine.core.events import JobFailed, JobFinished
from engine.core.jobs import JobStopped, run_job
from engine.core.runs import STATUS_FILE, write_status
from engine.train.config import TrainConfig
from engine.train.job import train
from tui.run_view import load_run_view, run_status


def train_job(dataset, **kw):
    cfg = TrainConfig(dataset=str(dataset), img_size=32, epochs=2, lr=1e-2, **kw)
    return run_job("train", lambda ctx: train(cfg, ctx), lambda e: None)


def only_run(runs):
    (run,) = list(runs.iterdir())
    return run


def status_of(run):
    return json.loads((run / STATUS_FILE).read_text())


def test_a_finished_run_is_done(tiny_dataset, tmp_path):
    final = train_job(tiny_dataset, runs_dir=str(tmp_path / "runs"))
    assert isinstance(final, JobFinished)
    run = only_run(tmp_path / "runs")
    marker = status_of(run)
    assert marker["status"] == "done" and marker["error"] is None and marker["pid"] == os.getpid()
    assert run_status(load_run_view(run))[0] == "done"


def test_a_run_that_fails_at_start_says_failed_and_why(tiny_dataset, tmp_path, monkeypatch):
    def boom(p, ctx):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(engine.train.job, "train_probe", boom)
    final = train_job(tiny_dataset, runs_dir=str(tmp_path / "runs"))
    assert isinstance(final, JobFailed)
    run = only_run(tmp_path / "runs")
    assert status_of(run)["status"] == "failed"
    status, why = run_status(load_run_view(run))
    assert status == "failed" and "CUDA out of memory (simulated)" in why


def test_a_stopped_run_says_stopped(tiny_dataset, tmp_path, monkeypatch):
    def stop(p, ctx):
        raise JobStopped()

    monkeypatch.setattr(engine.train.job, "train_probe", stop)
    train_job(tiny_dataset, runs_dir=str(tmp_path / "runs"))
    run = only_run(tmp_path / "runs")
    assert status_of(run)["status"] == "stopped"
    assert run_status(load_run_view(run))[0] == "stopped"


def test_running_is_believed_only_while_its_process_lives(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"classes": ["a", "b"], "mode": "probe"}))
    write_status(run, "running")  # this process: alive
    assert run_status(load_run_view(run))[0] == "running"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = status_of(run) | {"pid": int(dead.stdout)}
    (run / STATUS_FILE).write_text(json.dumps(marker))
    status, why = run_status(load_run_view(run))
    assert status == "stopped" and "ended without recording" in why


def test_unknown_statuses_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write_status(tmp_path, "finished")
