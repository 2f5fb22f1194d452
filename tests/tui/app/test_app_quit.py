"""Quitting: at once with no job; during a job, the job stops (and saves) and the app exits promptly."""

from __future__ import annotations

import asyncio

from helpers.tui import (
    make_app,
    run_with_timeout,
    wait_for,
)

from engine.core.events import JobFailed, JobFinished
from tui.messages import JobEvent


async def test_quit_without_jobs_is_immediate():
    app = make_app()

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("q")
            await asyncio.sleep(0)

    await run_with_timeout(scenario(), 30)


async def test_quitting_during_a_job_stops_it_and_exits_promptly(tmp_path, tiny_dataset):
    finals: list = []

    def hook(message):
        if isinstance(message, JobEvent) and isinstance(message.event, (JobFinished, JobFailed)):
            finals.append(message.event)

    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 10_000})

    async def scenario():
        async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            screen = app.screen
            await wait_for(pilot, lambda: screen.progress.epoch >= 1, 120, "the first epoch")
            job = screen.job
            await pilot.press("q")
            await wait_for(pilot, lambda: job.done.is_set(), 30, "the job to stop")
        return job

    job = await run_with_timeout(scenario(), 240)
    assert job.done.is_set() and job.control.stopped
    assert not app.jobs.running()
    assert app.return_code in (0, None)
