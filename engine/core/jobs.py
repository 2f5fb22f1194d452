"""Running a job: stop and pause through plain `threading.Event`s, and a final event always.

A job is a function `fn(ctx) -> dict` that emits events through `ctx.emit` and calls `ctx.check()` between
units of work (batches, images). `run_job` runs it in the calling thread — the workbench calls it from a
Textual thread worker, the CLI from the main thread — and always ends the stream with exactly one
`JobFinished(reason="completed"|"stopped")` or `JobFailed(error)`, from a `finally`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engine.core.errors import TlbenchError
from engine.core.events import (
    BatchEnded,
    Event,
    JobFailed,
    JobFinished,
    JobStarted,
    LogLine,
    ProgressAdvanced,
    Sink,
    StepEnded,
    null_sink,
)


class JobStopped(Exception):
    """Raised inside a job by `ctx.check()` once stop was requested; ends the job as "stopped"."""

    # what the job reached before it stopped, attached on the way out by code that can use it (a dream's
    # image so far); None otherwise
    partial: Any = None


class JobControl:
    """What a watcher holds to steer a running job. Safe to call from any thread."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self._resume = threading.Event()
        self._resume.set()

    def stop(self) -> None:
        self.stop_event.set()
        self._resume.set()  # a paused job must wake up to see the stop

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()


class JobContext:
    """Handed to a job function: emit events, honour stop and pause, throttle per-batch progress."""

    # At most this many per-batch events per second reach the sink; epoch and final events always do.
    MAX_PROGRESS_PER_S = 10.0

    def __init__(self, sink: Sink, control: JobControl):
        self._sink = sink
        self.control = control
        self._last_progress = 0.0
        self.result: dict[str, Any] = {}
        # Seconds spent blocked in check() while paused: a job subtracts them from its own durations
        # (epoch seconds, images/s, the run's time), which measure work, not waiting.
        self.paused_seconds = 0.0

    def emit(self, event: Event) -> None:
        self._sink(event)

    def log(self, text: str, level: str = "info") -> None:
        self._sink(LogLine(text, level))

    def progress_due(self) -> bool:
        """Whether progress() would emit now. A job whose progress values cost something to read (a training
        loss on a GPU: reading it waits for the device) asks first and reads them only when due."""
        return time.monotonic() - self._last_progress >= 1.0 / self.MAX_PROGRESS_PER_S

    def progress(self, event: BatchEnded | ProgressAdvanced | StepEnded, *, force: bool = False) -> None:
        """Emit a progress event unless one went out less than 1/MAX_PROGRESS_PER_S seconds ago."""
        if force or self.progress_due():
            self._last_progress = time.monotonic()
            self._sink(event)

    def check(self) -> None:
        """Between units of work: block while paused, raise JobStopped once stop is requested."""
        if not self.control._resume.is_set():
            self.log("paused")
            since = time.perf_counter()
            self.control._resume.wait()
            self.paused_seconds += time.perf_counter() - since
            if not self.control.stopped:
                self.log("resumed")
        if self.control.stopped:
            raise JobStopped()

    @property
    def stopped(self) -> bool:
        return self.control.stopped


JobFn = Callable[[JobContext], "dict[str, Any] | None"]


def run_job(
    name: str,
    fn: JobFn,
    sink: Sink = null_sink,
    control: JobControl | None = None,
    description: str = "",
) -> JobFinished | JobFailed:
    """Run `fn` in this thread; returns (and emits) the final event. Never raises for a job's own error."""
    control = control or JobControl()
    ctx = JobContext(sink, control)
    final: JobFinished | JobFailed | None = None
    try:
        sink(JobStarted(name, description))
        result = fn(ctx) or {}
        final = JobFinished("completed", dict(result))
    except JobStopped:
        final = JobFinished("stopped", dict(ctx.result))
    except KeyboardInterrupt:
        final = JobFinished("stopped", dict(ctx.result))
    except TlbenchError as err:
        final = JobFailed(err, err.title)
    except BaseException as err:  # noqa: BLE001 - a job's failure is reported, never lost
        final = JobFailed(err, f"{name} failed")
    finally:
        if final is None:  # pragma: no cover - only on interpreter shutdown
            final = JobFailed(RuntimeError("job ended without a result"), f"{name} failed")
        sink(final)
    return final


class JobThread:
    """A job on a daemon thread, for library and CLI use. The workbench uses Textual workers instead."""

    def __init__(self, name: str, fn: JobFn, sink: Sink = null_sink, description: str = ""):
        self.control = JobControl()
        self.final: JobFinished | JobFailed | None = None

        def target() -> None:
            self.final = run_job(name, fn, sink, self.control, description)

        self.thread = threading.Thread(target=target, name=f"tlbench-{name}", daemon=True)

    def start(self) -> "JobThread":
        self.thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Ask the job to stop and wait up to `timeout` seconds. True when it ended."""
        self.control.stop()
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def join(self, timeout: float | None = None) -> JobFinished | JobFailed | None:
        self.thread.join(timeout)
        return self.final
