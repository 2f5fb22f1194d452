"""Snapshots of the Results screen: a digits run, and a 37-class run (a report engine.evaluate builds from
fixed logits) (pytest-textual-snapshot; Textual is pinned exactly). Deterministic by construction: generated
data and runs (fixed names, dates and numbers), no blinking cursor, every asynchronous load awaited. After an
intended change: `pytest tests/tui/results/test_results_snapshots.py --snapshot-update`, then look at the
SVGs."""

from __future__ import annotations

import pytest
from helpers.results import pets_app
from helpers.tui import (
    SIZES,
    all_drawn,
    all_loaded,
    make_app,
    settle,
    wait_for,
    wait_thumbnails,
    write_run,
)


@SIZES
@pytest.mark.usefixtures("in_repo")
def test_results(snap_compare, size, tmp_path):
    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run

    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_results_37_classes(snap_compare, size, tmp_path, monkeypatch):
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        # the cursor on a mistake far from the corner: the headers stay, the crosshair shows
        await pilot.press(*["down"] * 36, *["right"] * 30)
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_results_row_percentages(snap_compare, size, tmp_path, monkeypatch):
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await pilot.press("n", "i")  # row percentages; the images focused (the captions' cursor)
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)
