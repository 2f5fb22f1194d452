"""Engine core: jobs always end with one final event; stop and pause; runs are written atomically."""

import json
import threading
import time

import badfiles as bf
import pytest
import torch

from engine.core.checkpoints import load_checkpoint, save_checkpoint
from engine.core.errors import ConfigError, RunError
from engine.core.events import BatchEnded, JobFailed, JobFinished, JobStarted, LogLine
from engine.core.files import atomic_write_json
from engine.core.jobs import JobControl, JobThread, run_job
from engine.core.runs import append_metrics, create_run_dir, read_metrics, resolve_run_dir
from engine.runtime.seeding import seed_everything


def collect():
    events = []
    return events, events.append


def test_completed_job_ends_with_one_finished_event():
    events, sink = collect()
    final = run_job("t", lambda ctx: {"x": 1}, sink)
    assert isinstance(events[0], JobStarted)
    assert events[-1] == final == JobFinished("completed", {"x": 1})
    assert sum(isinstance(e, (JobFinished, JobFailed)) for e in events) == 1


def test_failing_job_ends_with_job_failed_carrying_the_error():
    events, sink = collect()

    def boom(ctx):
        raise ConfigError("bad value 7")

    final = run_job("t", boom, sink)
    assert isinstance(final, JobFailed) and events[-1] is final
    assert str(final.error) == "bad value 7" and final.title == ConfigError.title


def test_unexpected_exception_is_reported_not_raised():
    final = run_job("t", lambda ctx: 1 / 0)
    assert isinstance(final, JobFailed) and isinstance(final.error, ZeroDivisionError)


def test_stop_ends_job_as_stopped_with_partial_result():
    started = threading.Event()

    def loop(ctx):
        for i in range(10_000):
            ctx.result["i"] = i
            started.set()
            ctx.check()
            time.sleep(0.001)
        return {"i": "never"}

    job = JobThread("t", loop).start()
    assert started.wait(5)
    assert job.stop(timeout=5)
    assert job.final.reason == "stopped" and isinstance(job.final.result["i"], int)


def test_pause_blocks_and_resume_continues():
    ticks = []
    gate = threading.Event()

    def loop(ctx):
        for i in range(200):
            ctx.check()
            ticks.append(i)
            gate.set()
            time.sleep(0.002)

    job = JobThread("t", loop).start()
    assert gate.wait(5)
    job.control.pause()
    time.sleep(0.05)
    frozen = len(ticks)
    time.sleep(0.1)
    assert len(ticks) <= frozen + 1  # at most the step in flight finishes
    job.control.resume()
    final = job.join(10)
    assert final.reason == "completed" and len(ticks) == 200


def test_stop_while_paused_wakes_the_job():
    control = JobControl()
    control.pause()
    control.stop()
    final = run_job("t", lambda ctx: ctx.check(), control=control)
    assert final.reason == "stopped"


def test_progress_is_throttled_but_forced_events_pass():
    events, sink = collect()

    def loop(ctx):
        for i in range(1000):
            ctx.progress(BatchEnded(1, i, 1000, 0.5))
        ctx.progress(BatchEnded(1, 1000, 1000, 0.5), force=True)

    run_job("t", loop, sink)
    batches = [e for e in events if isinstance(e, BatchEnded)]
    assert 2 <= len(batches) <= 20 and batches[-1].step == 1000


def test_log_lines_reach_the_sink():
    events, sink = collect()
    run_job("t", lambda ctx: ctx.log("hello", "warning"), sink)
    assert LogLine("hello", "warning") in events


def test_seed_everything_returns_and_applies_the_seed():
    assert seed_everything(123) == 123
    a = torch.rand(3)
    seed_everything(123)
    assert torch.equal(a, torch.rand(3))
    drawn = seed_everything(None)
    assert isinstance(drawn, int) and drawn >= 0


def test_run_dirs_are_unique_and_named(tmp_path):
    a = create_run_dir(tmp_path, "pets", "resnet50", "probe")
    b = create_run_dir(tmp_path, "pets", "resnet50", "probe")
    assert a != b and a.name.endswith("pets-resnet50-probe") and b.name.endswith("-2")


def test_atomic_json_and_metrics(tmp_path):
    atomic_write_json(tmp_path / "c.json", {"a": 1})
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": 1}
    append_metrics(tmp_path, {"epoch": 1, "val_acc": 0.5})
    append_metrics(tmp_path, {"epoch": 2, "val_acc": 0.7})
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_roundtrip_and_pickle_payload_refused(tmp_path):
    save_checkpoint(tmp_path / "ok.pt", {"model": {"w": torch.ones(2)}, "epoch": 3})
    assert load_checkpoint(tmp_path / "ok.pt")["epoch"] == 3

    torch.save({"format": "tlbench-checkpoint/1", "model": bf.PicklePayload(tmp_path / "pwned")}, tmp_path / "evil.pt")
    with pytest.raises(RunError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_run_names_cannot_escape_the_runs_root(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    with pytest.raises(RunError, match="outside"):
        resolve_run_dir("../secret", root)
