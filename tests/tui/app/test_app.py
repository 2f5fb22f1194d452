"""The workbench as a whole: the first screen without torch, 1-7 and every screen alive, help and the palette,
engine events that coalesce and those that never do, errors explained with a fix, jobs at a lower priority,
and a crashing worker reported in one place."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.data import DEMO
from helpers.tui import (
    make_app,
    text_of,
    wait_for,
)
from textual.widgets import DataTable

from engine.core.events import EpochEnded, JobFinished
from tui.errors import ErrorModal
from tui.messages import JobEvent


async def test_first_screen_needs_no_torch_and_lists_the_classes():
    """The Data screen appears and fills without PyTorch: start-up never waits ~5 s for it."""
    import subprocess
    import sys

    code = ("import sys; import tui.app, tui.main; heavy = [m for m in ('torch', 'torchvision') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        table = app.screen.query_one("#classes", DataTable)
        assert table.row_count == 10
        assert "1797 images" in text_of(app, "#data-summary")
        assert "train" in text_of(app, "#data-summary")  # the split


async def test_keys_1_to_7_switch_screens_and_every_screen_keeps_running(tmp_path):
    app = make_app(runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        for key, mode in zip("2345671", ["model", "train", "results", "attack", "dream", "runs", "data"]):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
            assert app.screen.TAB == mode
        await app.workers.wait_for_complete()


async def test_help_and_palette_list_every_action(tmp_path):
    from textual.command import CommandPalette

    from tui.app import TlbenchApp
    from tui.keys import HelpScreen, KeysProvider, help_sections

    app = make_app(runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(str(s.render()) for s in app.screen.query(".help-keys"))
        for _title, _text, bindings in help_sections(app):
            for b in bindings:
                assert b.description in shown
        await pilot.press("escape")
        # every binding of the app and the screens has an id and a description
        for cls in [TlbenchApp, *TlbenchApp.MODES.values()]:
            for b in cls.BINDINGS:
                assert b.id and b.description, (cls.__name__, b)
        # the palette offers the current screen's actions and the screen switches, with their keys
        await pilot.press("3")
        await pilot.pause()
        provider = KeysProvider(app.screen)
        names = {name: help_text for name, help_text, _ in provider._commands()}
        assert names["Start"].startswith("key t") and "Go to Results" in names and "Stop" in names
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


async def test_progress_events_coalesce_but_epochs_never_do():
    from engine.core.events import BatchEnded, ProgressAdvanced

    a = JobEvent("train", ProgressAdvanced("extract", 1, 10))
    b = JobEvent("train", ProgressAdvanced("extract", 2, 10))
    assert a.can_replace(b)
    assert not a.can_replace(JobEvent("train", ProgressAdvanced("scan", 2, 10)))
    assert not a.can_replace(JobEvent("scan", ProgressAdvanced("extract", 2, 10)))
    assert JobEvent("t", BatchEnded(1, 1, 5, 0.1)).can_replace(JobEvent("t", BatchEnded(1, 2, 5, 0.1)))
    epoch = JobEvent("train", EpochEnded(1, 3))
    assert not epoch.can_replace(JobEvent("train", EpochEnded(2, 3)))
    assert not a.can_replace(epoch)


def test_job_events_are_handled_by_name_one_method_per_job_and_event():
    """JobEvent(job, event) dispatches to on_job_<job>_<event> (Textual's naming), the event typed; a widget with
    no method for an event lets it bubble on."""
    from engine.core.events import JobFailed, ProgressAdvanced, StepEnded

    step = JobEvent("lr-find", StepEnded("lr-find", 1, 30))
    assert step.handler_name == "on_job_lr_find_step_ended" and isinstance(step, JobEvent)
    assert JobEvent("scan", JobFinished("completed")).handler_name == "on_job_scan_finished"
    assert JobEvent("scan", JobFailed(ValueError("x"))).handler_name == "on_job_scan_failed"
    assert JobEvent("fetch", ProgressAdvanced("download", 1, 2)).handler_name == "on_job_fetch_progress_advanced"
    assert type(JobEvent("scan", JobFinished("stopped"))) is type(JobEvent("scan", JobFinished("completed")))
    assert step.job == "lr-find" and step.event.step == 1 and step.bubble


async def test_truecolor_hint_shows_once(tmp_path, monkeypatch):
    monkeypatch.delenv("COLORTERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for expected in (1, 0):
        app = make_app(runs_dir=str(tmp_path / "runs"), color_hint=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda a=app: a.color_hint_checked, 30, "the colour check")
            assert not app.truecolor and app.console.color_system == "256"  # previews degrade to 256 colours
            hints = [n for n in app._notifications if n.title == "Colours"]
            assert len(hints) == expected
            assert "256" in app.colour_note()


@pytest.mark.parametrize("error, title, fix_part", [
    (MemoryError(), "Out of memory", "Halve batch_size"),
])
def test_errors_are_explained_with_a_cause_and_a_fix(error, title, fix_part):
    from tui.errors import describe_error

    got_title, cause, fix = describe_error(error)
    assert got_title == title and cause and fix_part in fix


def test_engine_messages_split_into_cause_and_fix():
    from engine.core.errors import DatasetError
    from tui.errors import describe_error

    title, cause, fix = describe_error(DatasetError("Dataset folder /x does not exist. Check the path, or run "
                                                    "`tlbench fetch` to download one."))
    assert (title, cause) == ("Dataset problem", "Dataset folder /x does not exist.")
    assert fix == "Check the path, or press f on the Data screen (1) to fetch one."  # a key, not a command


def test_app_demo_dataset_is_the_default():
    app = make_app(None)
    assert Path(app.state.dataset) == DEMO


def test_jobs_run_at_a_lower_cpu_priority_than_the_interface():
    import os
    import sys
    import threading

    from engine.core.jobs import JobControl
    from tui.jobs import JOB_NICENESS, JobRegistry, run_engine_job

    class Owner:
        def __init__(self):
            self.messages = []

        def post_message(self, message):
            self.messages.append(message)
            return True

    registry = JobRegistry()
    # a job that never imports torch: a "probe" would first import the engine (seconds on a loaded machine)
    job = registry.begin("scan", JobControl())
    seen = {}

    def fn(ctx):
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return {"ok": True}

    owner = Owner()
    t = threading.Thread(target=lambda: run_engine_job(owner, job, fn, registry))
    t.start()
    t.join(60)
    assert job.done.is_set() and not registry.running()
    assert isinstance(owner.messages[-1].event, JobFinished)
    if sys.platform.startswith("linux"):
        # (19 is the ceiling: a suite already run under `nice` cannot go JOB_NICENESS further)
        assert seen["nice"] >= min(19, os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICENESS)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < seen["nice"]  # the caller is untouched


async def test_a_worker_that_crashes_is_reported_in_one_place(tmp_path, monkeypatch):
    """Not a job's own error (those arrive as JobFailed) but the worker itself: the error modal, no crash."""
    import tui.runs.screen as runs_screen

    def broken(*args, **kwargs):
        raise RuntimeError("the worker broke")

    monkeypatch.setattr(runs_screen, "run_engine_job", broken)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), 30, "the error modal")
        assert app.screen.error_title == "Unexpected RuntimeError" and "the worker broke" in app.screen.cause
        while isinstance(app.screen, ErrorModal):  # each failed reload reports once
            await pilot.press("escape")
            await pilot.pause()
        await pilot.press("1")
        await pilot.pause()
        assert app.current_mode == "data"
