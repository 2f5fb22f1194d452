"""Snapshots of the help screen and the error modal at 80x24 (pytest-textual-snapshot; Textual is pinned
exactly). Deterministic by construction: generated data and runs (fixed names, dates and numbers), no blinking
cursor, every asynchronous load awaited. After an intended change: `pytest tests/tui/app/test_app_snapshots.py
--snapshot-update`, then look at the SVGs."""

from __future__ import annotations

import pytest
from helpers.tui import (
    all_drawn,
    make_app,
    settle,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("in_repo")

def test_help(snap_compare):
    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=before)


def test_error_modal(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app("missing-dataset")  # relative: the message names it the same on every machine

    async def before(pilot):
        from tui.errors import ErrorModal

        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ErrorModal), 30, "the error")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
