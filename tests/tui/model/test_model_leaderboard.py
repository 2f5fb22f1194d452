"""The Model screen's leaderboard: C asks for the candidates (prefilled with the backbones whose weights are
here), runs the comparison with rows arriving one by one, and enter on a row picks that backbone in the form."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from helpers.data import DEMO
from helpers.tui import (
    make_app,
    run_with_timeout,
    wait_for,
)
from textual.widgets import DataTable, Input

from engine.core.events import CandidateScored, JobFinished
from tui.messages import JobEvent
from tui.model.leaderboard import CompareDialog, Leaderboard


@pytest.fixture
def digits(tmp_path, monkeypatch):
    """Three digits, five images each, and a quick timing on one torch thread (the machine is shared)."""
    for c in ("0", "1", "7"):
        (tmp_path / "digits" / c).mkdir(parents=True)
        for src in sorted((DEMO / c).glob("*.png"))[:5]:
            shutil.copy2(src, tmp_path / "digits" / c / src.name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr("engine.evaluate.speed.BUDGET_S", 0.2)
    yield tmp_path / "digits"
    torch.set_num_threads(threads)


async def test_the_leaderboard_fills_live_and_enter_picks_a_backbone(digits):
    seen: list = []  # (event, scored rows on the leaderboard's table when it arrived)

    def hook(message):
        if isinstance(message, JobEvent) and isinstance(message.event, (CandidateScored, JobFinished)):
            seen.append(message.event)

    app = make_app(digits)

    async def body():
        async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: app.screen.registry is not None, 120, "the registry")
            model = app.screen
            app.state.config = {**app.state.config, "img_size": 32, "workers": 0}
            await pilot.press("C")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareDialog), 10, "the dialog")
            field = app.screen.query_one("#compare-backbones", Input)
            # prefilled with what can run offline: the shipped Lite models, not the torchvision ones
            assert "efficientnet_lite0" in field.value and "resnet18" not in field.value
            field.value = "efficientnet_lite0,efficientnet_lite1"
            app.screen.query_one("#compare-folds", Input).value = "2"
            field.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, Leaderboard), 10, "the leaderboard")
            board = app.screen
            table = board.query_one("#leaderboard", DataTable)
            assert table.row_count == 2  # both candidates listed at once, waiting
            await wait_for(pilot, lambda: board.result, 240, "the comparison")
            await pilot.pause()
            scored = [e for e in seen if isinstance(e, CandidateScored)]
            assert [e.row["backbone"] for e in scored] == ["efficientnet_lite0", "efficientnet_lite1"]
            assert isinstance(seen[-1], JobFinished)  # each row arrived before the end, as it was scored
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            assert all("±" in r[1] and r[6] == "shipped" for r in rows), rows
            best = board.result["best"]
            assert rows[0][0] == best  # best first
            assert model.backbone == "efficientnet_lite0"  # the default, before the pick
            other = "efficientnet_lite1"
            table.move_cursor(row=[r[0] for r in rows].index(other))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is model, 10, "back on the Model screen")
            assert app.state.config["backbone"] == other
            marks = model.query_one("#backbones", DataTable)
            chosen = [str(marks.get_row_at(i)[1]) for i in range(marks.row_count) if str(marks.get_row_at(i)[0]) == "●"]
            assert chosen == [other]

    await run_with_timeout(body(), 300)


async def test_the_workbench_times_a_backbone_as_the_headless_compare_does_and_r_times_again(digits, monkeypatch):
    """Issue 24 item 4: the leaderboard's 1,514 ms against headless 10.8 ms came from timing in a niced job
    thread. Both now go through backbone_speed with the same settings, at the same priority; r re-times."""
    from engine.evaluate import speed
    from tui.main import main

    timed: list[dict] = []

    def recording(model, size, device, batch, check=None):
        timed.append({"size": size, "device": speed.device_label(device), "batch": batch,
                      "nice": speed.thread_nice(), "threads": torch.get_num_threads()})
        return {"images_per_s": 100.0, "latency_ms": 10.0, "batch": batch, "busy": len(timed) > 1,
                "measured": "2026-01-01T00:00:00+0000", "device": speed.device_label(device), "load": 0.1}

    monkeypatch.setattr("engine.evaluate.speed.measure_speed", recording)
    assert main(["compare", str(digits), "--backbones", "efficientnet_lite0", "--folds", "2", "--img-size", "32",
                 "--workers", "0", "--batch-size", "16", "--json"]) == 0
    headless = timed[-1]
    app = make_app(digits)

    async def body():
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: app.screen.registry is not None, 120, "the registry")
            app.state.config = {**app.state.config, "img_size": 32, "workers": 0, "batch_size": 16}
            await pilot.press("C")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareDialog), 10, "the dialog")
            app.screen.query_one("#compare-backbones", Input).value = "efficientnet_lite0"
            app.screen.query_one("#compare-folds", Input).value = "2"
            app.screen.query_one("#compare-backbones", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, Leaderboard), 10, "the leaderboard")
            board = app.screen
            await wait_for(pilot, lambda: board.result, 120, "the comparison")
            assert len(timed) == 1  # the headless run's speed is cached: the workbench reuses it
            await pilot.press("r")
            await wait_for(pilot, lambda: board.result, 120, "the comparison timed again")
            await pilot.pause()
            assert len(timed) == 2 and timed[-1] == headless  # same function, same settings, same priority
            table = board.query_one("#leaderboard", DataTable)
            row = [str(c) for c in table.get_row_at(0)]
            assert row[4] == "10.0 ms" and row[5] == "busy"  # the re-timed speed, tagged
            status = str(board.query_one("#leaderboard-status").render())
            # the path's end kept (a second run in the same second gets "-2")
            assert "saved in" in status and re.search(r"-compare(-\d+)?$", status.rstrip())

    await run_with_timeout(body(), 300)
