"""Pausing a job for a long time that takes none: what the duration tests need (not wall-clock sleeps)."""

import threading
import time

from engine.core.events import JobFinished, LogLine
from engine.core.jobs import JobControl, run_job


class PausableClock:
    """time.perf_counter, plus seconds added by the test: a pause of 1000 s that takes no time."""

    def __init__(self):
        self.real, self.offset = time.perf_counter, 0.0

    def __call__(self):
        return self.real() + self.offset


def paused_job(job, monkeypatch, pause_when, pause_s=1000.0):
    """Run `job(ctx)`, pausing it when `pause_when(event)`; while it waits, the clock jumps `pause_s`."""
    clock = PausableClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    control = JobControl()
    waiting, done = threading.Event(), threading.Event()

    def sink(e):
        if not done.is_set() and pause_when(e):
            done.set()
            control.pause()
        if isinstance(e, LogLine) and e.text == "paused":
            waiting.set()

    def resume_later():
        assert waiting.wait(600)
        clock.offset += pause_s
        control.resume()

    helper = threading.Thread(target=resume_later, daemon=True)
    helper.start()
    final = run_job("train", job, sink, control)
    helper.join(10)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result
