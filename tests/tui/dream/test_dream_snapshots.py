"""Snapshots of the Dream screen: on a run before a job, and a dream finished (its events replayed)
(pytest-textual-snapshot; Textual is pinned exactly). Deterministic by construction: generated data and runs
(fixed names, dates and numbers), no blinking cursor, every asynchronous load awaited. After an intended
change: `pytest tests/tui/dream/test_dream_snapshots.py --snapshot-update`, then look at the SVGs."""

from __future__ import annotations

import pytest
from helpers.results import PETS_RUN, pets_app
from helpers.tui import (
    SIZES,
    all_drawn,
    all_loaded,
    make_app,
    pixels,
    settle,
    wait_for,
    write_run,
)

from engine.core.events import ImageRendered, JobFinished, StepEnded
from tui.messages import JobEvent


@SIZES
@pytest.mark.usefixtures("in_repo")
def test_dream(snap_compare, size, tmp_path):
    """The Dream screen on a run, before a job starts."""
    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run

    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("6")
        await wait_for(pilot, lambda: pilot.app.screen.model is not None, 30, "the model")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)



@SIZES
def test_dream_finished(snap_compare, size, tmp_path, monkeypatch):
    app, run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("6")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model")
        from tui.dream.screen import DreamRequest

        screen.query_one("#dream-class").value = "staffordshire_bull_terrier"
        screen.prepare(DreamRequest("staffordshire_bull_terrier", 100, None, 0, "robust", str(run), ""))
        events = [StepEnded("dream", s, 100, {"target_prob": min(0.99, 0.01 * s * 1.2)}) for s in range(1, 101)]
        path = f"runs/{PETS_RUN}/dreams/20260101-120600-staffordshire_bull_terrier-robust.png"
        events += [ImageRendered("dream", 100, path, 16, 16, pixels((120, 90, 60)), {"target_prob": 0.99}),
                   JobFinished("completed", {"path": path, "probability": 0.99, "rank": 1})]
        for event in events:
            screen.post_message(JobEvent("dream", event))
        await wait_for(pilot, lambda: len(screen.query_one("#dream-plot").history) == 100, 10, "the steps")
        await wait_for(pilot, lambda: screen.query_one("#dream-image").ready, 10, "the image")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)
