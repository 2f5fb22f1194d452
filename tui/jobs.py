"""The workbench side of engine jobs: a thin body for thread workers, and the registry quitting uses.

A widget runs a job like this (the decorator is on the widget, so the worker belongs to it):

    @work(thread=True, exclusive=True, group="fetch", exit_on_error=False)
    def run_fetch(self, job, name):
        run_engine_job(self, job, lambda ctx: fetch_dataset(name, data_dir(), ctx=ctx), workbench_of(self).jobs)

    def on_job_fetch_progress_advanced(self, message: JobEvent[ProgressAdvanced]) -> None: ...
    def on_job_fetch_finished(self, message: JobEvent[JobFinished]) -> None: ...

Events reach the widget as `JobEvent` messages through `post_message`, which is thread-safe and never waits
for the UI (`call_from_thread` would stall the training loop until the UI answers); each is handled by the
method named for its job and its kind (tui.messages.JobEvent), and what the screen must know the widget posts
up as a message of its own.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from textual.message_pump import MessagePump

from engine.core.events import Event, JobFailed, JobFinished
from engine.core.jobs import JobContext, JobControl, JobFn, run_job
from tui.messages import JobEvent

T = TypeVar("T")
VALUE = "value"  # where a workbench job's own result travels in JobFinished.result (see value_job)

# What a job is doing, as every part of the workbench shows it (the tab bar, the Train screen's two lines):
# one property, so the top and the bottom of a screen can never disagree.
RUNNING, PAUSED, STOPPING, STOPPED, FAILED, DONE = "running", "paused", "stopping…", "stopped", "failed", "done"
ENDED = (STOPPED, FAILED, DONE)


@dataclass
class RunningJob:
    name: str
    control: JobControl
    done: threading.Event = field(default_factory=threading.Event)
    final: Event | None = None  # JobFinished or JobFailed, set by the job's thread as it sends it

    @property
    def state(self) -> str:
        """running / paused / stopping… / stopped / failed / done — from the control the keys act on (at
        once) and the job's final event (the moment it is sent)."""
        final = self.final
        if isinstance(final, JobFailed):
            return FAILED
        if isinstance(final, JobFinished):
            return STOPPED if final.reason == "stopped" else DONE
        if self.control.stopped:
            return STOPPING
        if self.control.paused:
            return PAUSED
        return RUNNING


class JobRegistry:
    """The jobs running now, so that quitting can stop them all and wait (with a limit) for them to end.

    Thread workers run on a pool whose threads outlive a job, so a job's end is its own event, not the
    thread's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: list[RunningJob] = []

    def begin(self, name: str, control: JobControl) -> RunningJob:
        job = RunningJob(name, control)
        with self._lock:
            self._jobs.append(job)
        return job

    def end(self, job: RunningJob) -> None:
        job.done.set()
        with self._lock:
            if job in self._jobs:
                self._jobs.remove(job)

    def running(self, name: str | None = None) -> list[RunningJob]:
        with self._lock:
            return [j for j in self._jobs if name is None or j.name == name]

    def stop_all(self) -> None:
        for job in self.running():
            job.control.stop()

    def join_all(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds in total; True when every job has ended."""
        deadline = time.monotonic() + timeout
        for job in self.running():
            job.done.wait(max(0.0, deadline - time.monotonic()))
        return not self.running()


# The engine modules that import torch and torchvision. Two threads importing them at once can fail with
# "cannot import name 'InterpolationMode' from partially initialized module 'torchvision.transforms'"
# (seen: a training job started while the start-up warm-up and the registry were still importing), so
# they are imported under one lock, by whichever thread needs them first; later calls return at once.
HEAVY_MODULES = ("engine.train.config", "engine.models.registry", "engine.models.weights", "engine.train.job", "engine.serve.predict")
_import_lock = threading.Lock()
# Jobs that never import torch: they must not wait for the warm-up (the first scan is the first screen).
TORCH_FREE_JOBS = frozenset({"scan", "split", "runs", "results"})


def import_engine() -> None:
    """Import the engine's heavy modules (torch, torchvision) in this thread, one thread at a time."""
    with _import_lock:
        for name in HEAVY_MODULES:
            importlib.import_module(name)


# Jobs started from the workbench run this much "nicer" than the interface: a training job saturating both
# cores (its PyTorch threads and DataLoader workers inherit the value) then leaves the UI thread the CPU it
# needs for a key press. Measured on 2 cores: screen-switch p95 123 -> 78 ms under a cold feature extraction.
JOB_NICENESS = 10
_BASE_NICE = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0


def yield_cpu_to_the_ui() -> None:
    """Raise the calling thread's nice value (Linux: per thread). A pool thread keeps it afterwards, which
    suits it: every job the workbench runs is background work next to the interface."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere a thread id is not a valid PRIO_PROCESS target
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < _BASE_NICE + JOB_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, _BASE_NICE + JOB_NICENESS)
    except OSError:
        pass  # not allowed here: the job just runs at normal priority


def run_engine_job(owner: MessagePump, job: RunningJob, fn: JobFn, registry: JobRegistry,
                   nice: bool = True) -> JobFinished | JobFailed:
    """The body of a thread worker: run `fn` here; every event goes to `owner` as a JobEvent message.

    `job` was registered on the UI thread before the worker started, so quitting stops it even if its
    thread has not begun yet (the job then ends at its first `ctx.check()`). `nice=False` for a job that
    times something (the leaderboard's speeds): a niced thread measures the machine's load, not the model.
    """
    name = job.name

    def sink(event: Any) -> None:
        if isinstance(event, (JobFinished, JobFailed)):
            job.final = event  # before the message: whoever handles it sees the job as ended
        owner.post_message(JobEvent(name, event))

    def body(ctx):
        if name not in TORCH_FREE_JOBS:
            import_engine()  # a failed import ends the job as JobFailed, with its message
        return fn(ctx)

    try:
        if nice:
            yield_cpu_to_the_ui()
        return run_job(name, body, sink, job.control)
    finally:
        registry.end(job)


def value_job(fn: Callable[[JobContext], object]) -> JobFn:
    """A job of the workbench's own whose result is one object (a scanned dataset, a run read from disk): it
    travels in JobFinished.result, and `finished_value` gives it back with its type."""
    return lambda ctx: {VALUE: fn(ctx)}


def finished_value(event: JobFinished, kind: type[T]) -> T | None:
    """The result of a `value_job`, when it is a `kind` (None when the job stopped before it had one)."""
    value = event.result.get(VALUE)
    return value if isinstance(value, kind) else None
