"""Snapshots of the Runs screen, a run's details, the statuses of 37-class runs, and three runs compared
(pytest-textual-snapshot; Textual is pinned exactly). Deterministic by construction: generated data and runs
(fixed names, dates and numbers), no blinking cursor, every asynchronous load awaited. After an intended
change: `pytest tests/tui/runs/test_runs_snapshots.py --snapshot-update`, then look at the SVGs."""

from __future__ import annotations

import pytest
from helpers.data import ROOT
from helpers.results import PETS, pets_app, pets_dataset, write_pets_run, write_run_kinds
from helpers.tui import (
    SIZES,
    all_drawn,
    all_loaded,
    make_app,
    settle,
    wait_for,
    write_run,
)


@SIZES
@pytest.mark.usefixtures("in_repo")
def test_runs(snap_compare, size, tmp_path, monkeypatch):
    write_run(tmp_path / "runs", report=False)
    write_run(tmp_path / "runs", "20260102-090000-digits-efficientnet_lite0-probe", created="2026-01-02T09:00:00+0000")
    monkeypatch.chdir(tmp_path)  # the header names the runs folder relative to here
    app = make_app(ROOT / "data" / "demo" / "digits", runs_dir="runs")

    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: pilot.app.screen.views, 30, "the runs")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
@pytest.mark.usefixtures("in_repo")
def test_run_detail(snap_compare, size, tmp_path, monkeypatch):
    write_run(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    app = make_app(ROOT / "data" / "demo" / "digits", runs_dir="runs")

    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: pilot.app.screen.views, 30, "the runs")
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_runs_statuses(snap_compare, size, tmp_path, monkeypatch):
    app, run, data = pets_app(tmp_path, monkeypatch, created="2026-01-01T12:00:00+0000")
    root = tmp_path / "runs"
    write_pets_run(root, data, "20260102-090000-oxford-pets-efficientnet_lite0-full", status="stopped",
                   mode="full", created="2026-01-02T09:00:00+0000")
    write_pets_run(root, data, "20260103-090000-oxford-pets-resnet50-probe", status="failed", backbone="resnet50",
                   created="2026-01-03T09:00:00+0000")
    write_pets_run(root, data, "20260104-090000-oxford-pets-convnext_tiny-partial", mode="partial",
                   backbone="convnext_tiny", created="2026-01-04T09:00:00+0000", epochs=4)
    assert len(PETS) == 37

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: len(pilot.app.screen.views) == 4, 30, "the runs")
        await pilot.press("down")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_compare_runs(snap_compare, size, tmp_path, monkeypatch):
    data = pets_dataset(tmp_path / "pets")
    root = tmp_path / "runs"
    write_pets_run(root, data, "20260103-090000-oxford-pets-efficientnet_lite0-probe", created="2026-01-03T09:00:00+0000")
    write_pets_run(root, data, "20260102-090000-oxford-pets-efficientnet_lite0-full", status="stopped", mode="full",
                   created="2026-01-02T09:00:00+0000")
    write_pets_run(root, data, "20260101-090000-oxford-pets-resnet50-probe", status="failed", backbone="resnet50",
                   created="2026-01-01T09:00:00+0000")
    monkeypatch.chdir(tmp_path)
    app = make_app(ROOT / "data" / "demo" / "digits", runs_dir="runs")

    async def before(pilot):
        await wait_for(pilot, lambda: app.state.info is not None and not app.jobs.running(), 60, "the scan")
        await pilot.press("7")
        await wait_for(pilot, lambda: len(pilot.app.screen.views) == 3, 30, "the runs")
        await pilot.press("space", "down", "space", "down", "space", "c")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "CompareScreen", 10, "the comparison")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_runs_of_every_kind(snap_compare, size, tmp_path, monkeypatch):
    """Issue 24 item 6: an lr-find, a comparison and an audit listed as what they are, an auto run; the dataset
    named by its parent folder (oxford-iiit-pet/images)."""
    app, run, data = pets_app(tmp_path, monkeypatch)
    write_run_kinds(tmp_path / "runs", data)

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: len(pilot.app.screen.views) == 5, 30, "the runs")
        await pilot.press("down", "down")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_auto_run_detail(snap_compare, size, tmp_path, monkeypatch):
    """Issue 24 items 5 and 6: an auto run's winning recipe and leaderboard, its two sessions and when it ended."""
    app, run, data = pets_app(tmp_path, monkeypatch)
    write_run_kinds(tmp_path / "runs", data)

    async def before(pilot):
        await all_loaded(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: len(pilot.app.screen.views) == 5, 30, "the runs")
        await pilot.press("down", "down", "down", "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)
