"""The current run and the last settings survive a restart (a small state file, written atomically, ignored
with a notice when corrupt); with nothing remembered, the newest run with a model is current."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.tui import (
    make_app,
    wait_for,
    write_run,
)

from tui.state import load_state, save_state, state_path


def state_file() -> Path:
    return Path(os.environ["TLBENCH_CACHE"]).parent / "state.json"  # where make_app points the app


def with_model(run: Path) -> Path:
    (run / "best.pt").write_bytes(b"not read by these tests")
    return run


async def test_settings_and_the_current_run_survive_a_restart(tmp_path):
    runs = tmp_path / "runs"
    older = with_model(write_run(runs))
    with_model(write_run(runs, "20260102-090000-digits-efficientnet_lite0-probe"))
    app = make_app(runs_dir=str(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: bool(app.screen.query("#form")), 120, "the form")
        app.screen.query_one("#field-lr").value = "0.01"
        await pilot.pause()
        app.state.run_dir = older  # as Runs' u does
        app.state.changed()
        await wait_for(pilot, lambda: state_file().exists() and json.loads(state_file().read_text())
                       .get("run_dir") == str(older), 10, "the state file")
    saved = json.loads(state_file().read_text())
    assert saved["config"]["lr"] == 0.01 and saved["version"] == 1

    again = make_app(runs_dir=str(runs))
    async with again.run_test(size=(80, 24)) as pilot:
        assert again.state.run_dir == older and again.state.config["lr"] == 0.01
        await pilot.press("2")
        await wait_for(pilot, lambda: bool(again.screen.query("#form")), 120, "the form")
        assert again.screen.query_one("#field-lr").value == "0.01"
        await pilot.press("4")
        await wait_for(pilot, lambda: again.screen.view is not None, 30, "the results")
        assert again.screen.view.run_dir == older


async def test_a_change_just_before_quitting_is_still_written(tmp_path):
    app = make_app(runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        app.state.config = {"epochs": 7}
        app.state.changed()
        await pilot.press("q")  # before SAVE_DELAY has passed
    assert json.loads(state_file().read_text())["config"] == {"epochs": 7}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"config": 3}'])
async def test_a_corrupt_state_file_is_ignored_with_a_notice(tmp_path, content):
    state_file().write_text(content)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        notes = [n for n in app._notifications if n.title == "State file"]
        assert len(notes) == 1 and "Ignored" in notes[0].message and "defaults" in notes[0].message
        assert app.state.config == {} and app.state.run_dir is None
        await pilot.pause(2 * app.SAVE_DELAY)
        assert state_file().read_text() == content  # left as it is until there is something to remember
        await pilot.press("2")
        assert app.current_mode == "model"


async def test_with_nothing_remembered_the_newest_run_with_a_model_is_current(tmp_path):
    runs = tmp_path / "runs"
    with_model(write_run(runs))
    newest = with_model(write_run(runs, "20260103-090000-digits-efficientnet_lite0-probe"))
    write_run(runs, "20260104-090000-digits-efficientnet_lite0-probe")  # newer, but no model (failed early)
    app = make_app(runs_dir=str(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.run_dir is not None, 10, "a current run")
        assert app.state.run_dir == newest
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.view is not None, 30, "the results")
        assert app.screen.view.run_dir == newest


async def test_a_remembered_run_that_was_deleted_is_forgotten(tmp_path):
    runs = tmp_path / "runs"
    save_state(state_file(), {"version": 1, "config": {}, "run_dir": str(runs / "gone")})
    app = make_app(runs_dir=str(runs))
    async with app.run_test(size=(80, 24)):
        assert app.state.run_dir is None


def test_the_state_file_is_written_atomically_and_lives_in_the_config_dir(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "tlbench" / "state.json"
    save_state(path, {"config": {"lr": 0.1}})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_state(path, {"config": {"lr": 0.2}})
    monkeypatch.undo()
    assert load_state(path) == ({"config": {"lr": 0.1}, "run_dir": None}, None)  # the old one, whole
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary file left behind
    monkeypatch.delenv("TLBENCH_STATE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert state_path() == path
    monkeypatch.setenv("TLBENCH_STATE", str(tmp_path / "elsewhere.json"))
    assert state_path() == tmp_path / "elsewhere.json"
