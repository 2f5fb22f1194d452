"""Snapshots of the Model screen (pytest-textual-snapshot; Textual is pinned exactly). Deterministic by
construction: generated data and runs (fixed names, dates and numbers), no blinking cursor, every asynchronous
load awaited. After an intended change: `pytest tests/tui/model/test_model_snapshots.py --snapshot-update`,
then look at the SVGs."""

from __future__ import annotations

import pytest
from helpers.tui import (
    SIZES,
    all_drawn,
    make_app,
    settle,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("in_repo")

@SIZES
def test_model(snap_compare, size, pets):
    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.screen.registry is not None, 120, "the registry")
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


@SIZES
def test_model_auto_mode(snap_compare, size, pets):
    """auto: the budget first, what the search chooses hidden, the summary says what it will search."""
    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.screen.registry is not None, 120, "the registry")
        for _ in range(4):
            await pilot.press("m")
        await wait_for(pilot, lambda: pilot.app.state.config.get("mode") == "auto", 10, "auto mode")
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


@SIZES
def test_leaderboard(snap_compare, size, pets, monkeypatch):
    """The leaderboard after a comparison (issue 24 items 4, 7): speeds with when they were timed (today, busy,
    old), top-5 shown for 37 classes, the status naming the device and where it was saved (middle ellipsis),
    the Pareto note in the hint line."""
    import time

    from engine.core.events import CandidateScored
    from tui.model.leaderboard import Leaderboard

    today = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rows = [("efficientnet_lite2", 0.912, 151.0, 10.8, "", today, True),
            ("efficientnet_lite1", 0.897, 0.66, 1514.0, "busy", today, False),
            ("efficientnet_lite0", 0.871, 240.0, 6.8, "old", None, True)]

    def fake_compare(dataset, backbones, ctx, **kwargs):
        out = []
        for i, (name, acc, ips, ms, note, when, front) in enumerate(rows, 1):
            row = {"backbone": name, "accuracy": acc, "accuracy_std": 0.021, "top5": 0.987, "images_per_s": ips,
                   "latency_ms": ms, "params": 5.0e6, "weights": "shipped", "speed_note": note,
                   "speed_measured": when, "speed_device": "cpu:2threads", "pareto": front, "error": None}
            out.append(row)
            ctx.emit(CandidateScored(i, len(rows), row))
        return {"results": out, "best": rows[0][0], "complete": True,
                "run_dir": "/home/someone/experiments/runs/20260101-120000-oxford-iiit-pets-compare"}

    monkeypatch.setattr("engine.features.compare.compare", fake_compare)

    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.screen.registry is not None, 120, "the registry")
        board = Leaderboard({"dataset": "pets", "backbones": [r[0] for r in rows], "folds": 5})
        await pilot.app.push_screen(board)
        await wait_for(pilot, lambda: bool(board.result), 60, "the comparison")
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)
