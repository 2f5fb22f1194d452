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
