"""Snapshot of the run comparison at 80x24 and 120x35: three marked runs (finished, stopped after two epochs,
failed at start) with their curves, legend and config diff. Update after an intended change with
`pytest tests/tui/test_tui_snapshots_runs_compare.py --snapshot-update` and look at the SVGs."""

from __future__ import annotations

import pytest
from conftest import ROOT
from tui_helpers import make_app, settle, wait_for
from tui_results_helpers import pets_dataset, write_pets_run

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])


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
