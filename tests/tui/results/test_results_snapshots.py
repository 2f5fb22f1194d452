"""Snapshots of the Results screen: a digits run, and a 37-class run (a report engine.evaluate builds from
fixed logits) (pytest-textual-snapshot; Textual is pinned exactly). Deterministic by construction: generated
data and runs (fixed names, dates and numbers), no blinking cursor, every asynchronous load awaited. After an
intended change: `pytest tests/tui/results/test_results_snapshots.py --snapshot-update`, then look at the
SVGs."""

from __future__ import annotations

import pytest
from helpers.results import (
    AUTO_RUN,
    PETS,
    pets_app,
    pets_dataset,
    pets_report,
    write_pets_run,
    write_run_kinds,
)
from helpers.tui import (
    SIZES,
    all_drawn,
    all_loaded,
    burst,
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
        await burst(pilot, *["down"] * 36, *["right"] * 30)  # as over a laggy SSH link: all at once
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


@SIZES
def test_results_worst_classes(snap_compare, size, tmp_path, monkeypatch):
    """Issue 24 item 2: w, the classes with the lowest F1 first (the header's F1▲ says the order)."""
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await pilot.press("w")
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_results_matrix_overview(snap_compare, size, tmp_path, monkeypatch):
    """Issue 24 item 2: the whole 37x37 matrix on one screen, the cursor on the terriers' confusion."""
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await pilot.press("o")
        await wait_for(pilot, lambda: pilot.app.screen.__class__.__name__ == "MatrixOverview", 10, "the overview")
        await burst(pilot, *["down"] * PETS.index("yorkshire_terrier"), *["right"] * PETS.index("scottish_terrier"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_results_no_mistakes(snap_compare, size, tmp_path, monkeypatch):
    """Issue 24 item 2: no mistakes, so the right answers it was least sure of."""
    monkeypatch.chdir(tmp_path)
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data, report=pets_report(data, mistakes=False))
    app = make_app(runs_dir="runs")
    app.state.run_dir = run

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_results_auto_run(snap_compare, size, tmp_path, monkeypatch):
    """Issue 24 item 5: an auto run's Results say what it chose (b lists the recipes)."""
    app, _run, data = pets_app(tmp_path, monkeypatch)
    write_run_kinds(tmp_path / "runs", data)
    app.state.run_dir = tmp_path / "runs" / AUTO_RUN

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)
