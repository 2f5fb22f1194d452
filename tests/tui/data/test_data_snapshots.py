"""Snapshots of the Data screen (37 Oxford-length classes) and the preview (pytest-textual-snapshot; Textual
is pinned exactly). Deterministic by construction: generated data and runs (fixed names, dates and numbers),
no blinking cursor, every asynchronous load awaited. After an intended change: `pytest
tests/tui/data/test_data_snapshots.py --snapshot-update`, then look at the SVGs."""

from __future__ import annotations

import pytest
from helpers.tui import (
    SIZES,
    all_drawn,
    make_app,
    settle,
    wait_for,
    wait_thumbnails,
)

pytestmark = pytest.mark.usefixtures("in_repo")

@SIZES
def test_data(snap_compare, size, pets):
    async def before(pilot):
        await all_drawn(pilot)
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#thumbs"))

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


def test_preview(snap_compare):
    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("g", "right", "enter")
        image = pilot.app.screen.query_one("#preview-image")
        await wait_for(pilot, lambda: image.ready, 30, "the preview")
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 35), run_before=before)
