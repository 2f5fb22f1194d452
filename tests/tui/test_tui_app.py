"""Pilot tests: the workbench driven by keys, with the real engine on tiny data.

Each test that runs a job is bounded by a timeout, so a hang (a worker that never ends, an exit that waits
forever) fails the test instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import DEMO
from textual.widgets import DataTable, Static
from tui_helpers import make_app, run_with_timeout, wait_for, wait_thumbnails, write_run

from engine.core.events import EpochEnded, JobFailed, JobFinished, LogLine
from tui.errors import ErrorModal
from tui.messages import JobEvent
from tui.results.confusion import ConfusionGrid
from tui.widgets.grid import ThumbnailGrid


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


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


async def test_thumbnails_render_off_the_ui_thread_and_only_what_is_visible(tmp_path):
    """A class of 400 images: only the visible thumbnails are requested; moving down keeps the cache bounded."""
    from conftest import make_dataset

    root = make_dataset(tmp_path / "big", {"red": 400, "blue": 3}, size=16)
    app = make_app(root)
    app.thumbnails.max_items = 40
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        table = app.screen.query_one("#classes", DataTable)
        table.move_cursor(row=1)  # "red" (classes are sorted: blue, red)
        grid = app.screen.query_one("#thumbs", ThumbnailGrid)
        await wait_thumbnails(pilot, grid)
        visible = len(grid.visible_indices())
        assert len(grid.items) == 400 and 0 < visible < 40
        # blue's 3 and red's visible ones (a first page may render twice while the layout settles), not 400
        assert app.thumbnails.rendered <= 2 * (3 + visible)
        grid.focus()
        await pilot.pause()
        for _ in range(12):
            await pilot.press("pagedown")
        await wait_thumbnails(pilot, grid)
        assert grid.cursor > 60
        assert len(app.thumbnails) <= 40  # bounded LRU: memory stays flat
        assert app.thumbnails.rendered < 200  # rows scrolled past were skipped, not rendered
        # enter opens the large preview with file name, size and label
        await pilot.press("enter")
        await pilot.pause()
        details = str(app.screen.query_one("#preview-details", Static).render())
        assert "label red" in details and "16x16 px" in details
        assert app.screen.query_one("#preview-title", Static).render()
        await pilot.press("escape")


async def test_broken_dataset_opens_an_error_modal_and_the_app_keeps_running(tmp_path):
    app = make_app(tmp_path / "no-such-folder")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error modal")
        modal = app.screen
        assert modal.error_title == "Dataset problem"
        assert "does not exist" in modal.cause
        assert modal.fix  # what to do
        await pilot.press("escape")
        await pilot.pause()
        assert app.current_mode == "data" and not isinstance(app.screen, ErrorModal)
        assert "Could not open" in text_of(app, "#data-empty")
        await pilot.press("2")
        await pilot.pause()
        assert app.current_mode == "model"  # still running


async def test_model_form_validates_inline_with_the_reason(tmp_path, tiny_dataset):
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.registry is not None, what="the registry")
        table = app.screen.query_one("#backbones", DataTable)
        assert table.row_count >= 10
        lr = app.screen.query_one("#field-lr")
        lr.value = "0"
        await pilot.pause()
        status = text_of(app, "#config-status")
        assert "--lr 0" in status and "out of range" in status
        assert app.screen.query_one("#row-lr").has_class("-invalid")
        assert app.state.config_error and "--lr" in app.state.config_error
        lr.value = "abc"
        await pilot.pause()
        assert "not a number" in text_of(app, "#config-status")
        lr.value = "0.01"
        await pilot.pause()
        assert app.state.config_error is None and app.state.config["lr"] == 0.01
        assert not app.screen.query_one("#row-lr").has_class("-invalid")
        # every TrainConfig field the workbench does not set itself is in the form
        import dataclasses

        from engine.train.config import TrainConfig
        from tui.model.settings import NOT_IN_FORM

        for f in dataclasses.fields(TrainConfig):
            if f.name not in NOT_IN_FORM:
                assert app.screen.query(f"#field-{f.name}"), f.name
        # m cycles the mode; the chosen mode's line is marked
        await pilot.press("escape", "m")
        await pilot.pause()
        assert app.state.config["mode"] == "head"
        assert "● head" in text_of(app, "#modes")


async def test_training_a_probe_then_stopping_a_long_one(tmp_path, tiny_dataset):
    """t starts a real probe on tiny data; events arrive in order; s stops a long job as 'stopped'."""
    events: list = []

    def hook(message):
        if isinstance(message, JobEvent) and message.job == "train":
            events.append(message.event)

    async def scenario():
        app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 3})
        async with app.run_test(size=(120, 35), message_hook=hook) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            screen = app.screen
            await wait_for(pilot, lambda: any(isinstance(e, (JobFinished, JobFailed)) for e in events), 120,
                           "the probe to finish")
            final = events[-1]
            assert isinstance(final, JobFinished) and final.reason == "completed", final
            assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [1, 2, 3]
            assert any(isinstance(e, LogLine) for e in events)
            await wait_for(pilot, lambda: "Done." in str(screen.query_one("#train-summary", Static).render()), 10,
                           "the summary")
            assert app.state.run_dir is not None and (app.state.run_dir / "config.json").exists()
            assert len(screen.query_one("#acc-plot").history) == 3
            assert app.job_status == ""

            # a long one: stop it while it runs
            events.clear()
            app.state.config["epochs"] = 10_000
            await pilot.press("t")
            await wait_for(pilot, lambda: any(isinstance(e, EpochEnded) for e in events), 120, "epochs")
            assert app.job_status.startswith("● train")
            await pilot.press("space")  # pause
            await wait_for(pilot, lambda: screen.job.control.paused, 10, "the pause")
            await pilot.press("4", "e")  # evaluating a run while training is refused (its report comes at the end)
            await pilot.pause()
            assert not app.jobs.running("eval") and any("Training is running" in n.message for n in app._notifications)
            await pilot.press("3", "space")  # resume
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(events[-1], JobFinished), 60, "the stop")
            assert events[-1].reason == "stopped"
            await wait_for(pilot, lambda: "Stopped." in str(screen.query_one("#train-summary", Static).render()), 10,
                           "the summary")
            assert not app.jobs.running()

    await run_with_timeout(scenario(), 300)


async def test_quitting_during_a_job_stops_it_and_exits_promptly(tmp_path, tiny_dataset):
    finals: list = []

    def hook(message):
        if isinstance(message, JobEvent) and isinstance(message.event, (JobFinished, JobFailed)):
            finals.append(message.event)

    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 10_000})

    async def scenario():
        async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            screen = app.screen
            await wait_for(pilot, lambda: screen.progress.epoch >= 1, 120, "the first epoch")
            job = screen.job
            await pilot.press("q")
            await wait_for(pilot, lambda: job.done.is_set(), 30, "the job to stop")
        return job

    job = await run_with_timeout(scenario(), 240)
    assert job.done.is_set() and job.control.stopped
    assert not app.jobs.running()
    assert app.return_code in (0, None)


async def test_results_after_a_run_with_a_report(tmp_path, tiny_dataset):
    """A real probe run; its report.json (as evaluation writes it) feeds the Results screen."""
    from tui_helpers import sample_report

    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 2})

    async def scenario():
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            await wait_for(pilot, lambda: app.state.run_dir is not None and not app.jobs.running(), 120, "training")
            run_dir = app.state.run_dir
            await pilot.press("4")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is not None, 30,
                           "the run's own report")
            classes = json.loads((run_dir / "config.json").read_text())["classes"]
            real = json.loads((run_dir / "report.json").read_text())  # every run ends with its evaluation
            assert app.screen.query_one("#per-class", DataTable).row_count == len(classes)
            assert app.screen.query_one("#matrix", ConfusionGrid).matrix == real["confusion"]

            (run_dir / "report.json").unlink()  # a run without a report says so, and e writes it again
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is None, 30,
                           "the empty state")
            assert "no report.json yet" in text_of(app, "#results-empty")
            await pilot.press("e")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is not None, 120,
                           "the evaluation")
            again = json.loads((run_dir / "report.json").read_text())
            assert again["confusion"] == real["confusion"] and app.job_status == ""

            report = sample_report([str(i) for i in range(10)])
            report["classes"] = classes
            n = len(classes)
            report["confusion"] = [[5 if i == j else (2 if (i, j) == (0, 1) else 0) for j in range(n)]
                                   for i in range(n)]
            report["per_class"] = report["per_class"][:n]
            loss_path = str(next((tiny_dataset / classes[0]).glob("*.png")))
            report["top_losses"] = [{"path": loss_path, "true": classes[0], "predicted": classes[1],
                                     "prob_true": 0.1, "prob_predicted": 0.8, "loss": 2.3}]
            report["most_confused"] = [{"true": classes[0], "predicted": classes[1], "count": 2}]
            (run_dir / "report.json").write_text(json.dumps(report))
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is not None, 30,
                           "the report")
            screen = app.screen
            grid = screen.query_one("#matrix", ConfusionGrid)
            assert grid.matrix[0][1] == 2
            assert screen.query_one("#per-class", DataTable).row_count == n
            assert screen.query_one("#confused", DataTable).row_count == 1
            # choose the confusion cell (true 0 -> predicted 1): its images show
            grid.focus()
            await pilot.pause()
            await pilot.press("right", "enter")
            await pilot.pause()
            images = screen.query_one("#loss-images", ThumbnailGrid)
            assert [t.path for t in images.items] == [loss_path]
            assert f"true {classes[0]} → predicted {classes[1]}" in text_of(app, "#images-title")
            # a: the highlighted image becomes the Attack screen's source
            await pilot.press("a")
            await wait_for(pilot, lambda: app.current_mode == "attack", 10, "the attack screen")
            await pilot.pause()
            assert app.screen.query_one("#attack-source").value == loss_path

    await run_with_timeout(scenario(), 300)


async def test_results_show_a_written_report_and_cells_choose_images(tmp_path):
    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.view is not None, 30, "the report")
        header = text_of(app, "#results-header")
        assert "accuracy 0.980" in header and "top-5 0.997" in header
        grid = app.screen.query_one("#matrix", ConfusionGrid)
        images = app.screen.query_one("#loss-images", ThumbnailGrid)
        assert len(images.items) == 7  # the top losses first
        grid.focus()
        await pilot.pause()
        await pilot.press(*["down"] * 3, *["right"] * 8)  # true 3, predicted 8
        assert "true 3 → predicted 8: 4" in text_of(app, "#matrix-status")
        await pilot.press("enter")
        await pilot.pause()
        assert len(images.items) == 4 and all(t.label == "3" for t in images.items)
        confused = app.screen.query_one("#confused", DataTable)
        confused.focus()
        await pilot.pause()
        await pilot.press("down", "enter")  # 9 -> 4
        await pilot.pause()
        assert grid.cursor == (4, 9) and len(images.items) == 2


async def test_a_cell_shows_every_mistake_the_report_lists(tmp_path):
    """A cell's images come from the report's full list of wrong predictions, not just the top 16 losses."""
    run = write_run(tmp_path / "runs")
    report = json.loads((run / "report.json").read_text())
    report["mistakes"] = report["top_losses"]
    report["top_losses"] = report["top_losses"][:1]
    (run / "report.json").write_text(json.dumps(report))
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.view is not None, 30, "the report")
        images = app.screen.query_one("#loss-images", ThumbnailGrid)
        assert len(images.items) == 1  # l's view: the top losses
        app.screen.query_one("#matrix", ConfusionGrid).select(3, 8)
        app.screen.cell_images(3, 8)
        await pilot.pause()
        assert len(images.items) == 4 and "true 3 → predicted 8: 4 image(s), highest loss first" in text_of(
            app, "#images-title")


async def test_runs_list_open_and_use_a_model(tmp_path):
    root = tmp_path / "runs"
    older = write_run(root, report=False)
    write_run(root, "20260102-090000-digits-resnet18-probe")
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("7")
        await wait_for(pilot, lambda: app.screen.query_one("#runs", DataTable).row_count == 2, 30, "the runs")
        table = app.screen.query_one("#runs", DataTable)
        first_row = [str(c) for c in table.get_row_at(0)]  # newest first
        assert first_row[1:7] == ["2026-01-01 12:00", "digits", "efficientnet_lite0", "probe", "0.9500", "0:42"]
        assert "resnet18" in str(table.coordinate_to_cell_key((0, 0)).row_key.value)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "RunDetailScreen"
        assert len(app.screen.query_one("#run-acc").history) == 5
        await pilot.press("escape", "down", "u")
        await pilot.pause()
        assert app.state.run_dir == older
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.view is not None, 30, "the results")
        assert app.screen.view.run_dir == older
        assert "no report.json yet" in text_of(app, "#results-empty")


async def test_attack_and_dream_show_their_jobs_events(tmp_path):
    """The events engine.adversarial.attacks' and engine.adversarial.dreams' jobs emit become the plot, the pictures and captions."""
    from PIL import Image

    from engine.core.events import ImageRendered, StepEnded
    from tui.widgets.image_view import ImageView

    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("5")
        screen = app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model info")
        assert "run " + run.name in text_of(app, "#model-line")
        # the events engine.adversarial.attacks' job emits, and its summary
        pixels = Image.new("RGB", (8, 8), (200, 30, 30)).tobytes()
        for step in range(1, 4):
            screen.post_message(JobEvent("attack", StepEnded("attack", step, 3, {"target_prob": step / 3})))
        screen.post_message(JobEvent("attack", ImageRendered("attack-adversarial", 3, None, 8, 8, pixels,
                                                             {"success": 1.0})))
        summary = {"out_dir": "runs/x/attacks/1", "results": [{
            "path": "a.png", "before": [{"class": "3", "prob": 0.98}], "after": [{"class": "8", "prob": 0.97}],
            "success": True, "linf_255": 4.0, "l2": 0.5}]}
        screen.post_message(JobEvent("attack", JobFinished("completed", summary)))
        await wait_for(pilot, lambda: len(screen.query_one("#attack-plot").history) == 3, 10, "three steps plotted")
        assert "8 0.97 · fooled" in text_of(app, "#cap-adversarial")
        assert "3 0.98" in text_of(app, "#cap-original") and "4.0/255" in text_of(app, "#cap-perturbation")
        view = screen.query_one("#img-adversarial", ImageView)
        await wait_for(pilot, lambda: view.ready, 10, "the rendered image")
        assert "3 0.98 → 8 0.97" in text_of(app, "#attack-status")

        await pilot.press("6")
        dream = app.screen
        await wait_for(pilot, lambda: dream.model is not None, 30, "the model info")
        dream.post_message(JobEvent("dream", StepEnded("dream", 25, 300, {"target_prob": 0.4})))
        dream.post_message(JobEvent("dream", ImageRendered("dream-preview", 25, None, 8, 8, pixels,
                                                           {"target_prob": 0.4})))
        await wait_for(pilot, lambda: dream.frame is not None, 10, "the dream frame")
        assert "probability 0.400" in text_of(app, "#dream-caption")
        await pilot.press("w")  # save the current frame, atomically, into the run
        await pilot.pause()
        assert list((run / "dreams").glob("*.png"))


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


def test_train_progress_numbers():
    from engine.core.events import ProgressAdvanced
    from tui.train.progress import TrainProgress
    from tui.widgets.text import clock

    p = TrainProgress()
    p.update(ProgressAdvanced("extract", 50, 150, "images", 25.0))
    assert p.eta == 4.0 and "extract 50/150 images" in p.line() and "25.0 img/s" in p.line()
    for e in (1, 2):
        p.update(EpochEnded(e, 4, {"val_acc": 0.5}, 2.0))
    assert p.eta == 4.0 and p.fraction == 0.5 and "epoch 2/4" in p.line() and "img/s" not in p.line()
    assert clock(3725) == "1:02:05" and clock(None) == "-"


def test_app_demo_dataset_is_the_default():
    app = make_app(None)
    assert Path(app.state.dataset) == DEMO


async def test_quit_without_jobs_is_immediate():
    app = make_app()

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("q")
            await asyncio.sleep(0)

    await run_with_timeout(scenario(), 30)


async def test_unusable_files_are_listed_with_their_reasons(tmp_path):
    from badfiles import write_text_as_jpg, write_zero_byte
    from conftest import make_dataset

    root = make_dataset(tmp_path / "mixed", {"red": 4, "blue": 4})
    write_zero_byte(root / "red" / "empty.png")
    write_text_as_jpg(root / "blue" / "note.jpg")
    before = sorted(p.name for p in root.rglob("*"))
    app = make_app(root)
    async with app.run_test(size=(120, 35)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        assert "2 unusable (u)" in text_of(app, "#data-summary")
        await pilot.press("u")
        await pilot.pause()
        table = app.screen.query_one("#unusable", DataTable)
        rows = {str(table.get_row_at(i)[0]).rsplit("/", 1)[-1]: str(table.get_row_at(i)[1])
                for i in range(table.row_count)}
        assert "empty file" in rows["empty.png"] and "not an image" in rows["note.jpg"]
        assert "nothing on disk was changed" in text_of(app, "#unusable-title")
        await pilot.press("u")
        await pilot.pause()
        assert app.screen.query_one("#data-unusable").has_class("hidden")
    assert sorted(p.name for p in root.rglob("*")) == before  # read only


async def test_fetch_hook_downloads_and_opens_the_dataset(tmp_path, monkeypatch):
    """f asks for a name, fetches it as a job and opens the result."""
    import importlib.machinery
    import sys
    import types

    from conftest import make_dataset

    from engine.core.events import ProgressAdvanced

    fetched = tmp_path / "data" / "colours"
    fake = types.ModuleType("engine.fetch.sources")
    fake.__spec__ = importlib.machinery.ModuleSpec("engine.fetch.sources", None)
    fake.DATASETS = {"colours": types.SimpleNamespace(title="a tiny test dataset")}  # engine.fetch.sources: DatasetSource

    def fetch_dataset(name, dest=None, *, ctx=None):  # engine.fetch.sources's signature
        assert name == "colours" and dest is not None
        ctx.progress(ProgressAdvanced("download", 1, 1, "bytes"), force=True)
        return {"path": str(make_dataset(fetched, {"red": 3, "green": 3})), "command": "tlbench …"}

    fake.fetch_dataset = fetch_dataset
    monkeypatch.setitem(sys.modules, "engine.fetch.sources", fake)
    app = make_app(tmp_path / "nothing-here")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error")
        await pilot.press("escape")
        await pilot.pause()
        assert "f fetch one (" in text_of(app, "#data-empty")
        await pilot.press("f")
        await pilot.pause()
        await pilot.press(*"colours", "enter")
        await wait_for(pilot, lambda: app.state.info is not None, what="the fetched dataset")
        assert app.state.dataset == fetched and app.state.info.classes == ["green", "red"]


async def test_f_lists_the_datasets_to_fetch(tmp_path):
    from tui.data.open_dataset import AskScreen

    app = make_app(tmp_path / "nothing-here")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error")
        await pilot.press("escape", "f")
        await pilot.pause()
        assert isinstance(app.screen, AskScreen) and "oxford-pets" in str(app.screen.hint)
        assert "Oxford-IIIT Pets" in str(app.screen.hint)  # each name with its title


async def test_open_another_dataset_with_o(tmp_path, tiny_dataset):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the demo")
        await pilot.press("o")
        await pilot.pause()
        field = app.screen.query_one("#ask-input")
        field.value = str(tiny_dataset)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.info is not None and app.state.info.name == "colours",
                       what="the new dataset")
        assert app.screen.query_one("#classes", DataTable).row_count == 3


def test_robustness_rows_read_the_sweeps_in_a_report():
    from tui.attack.robustness import robustness_rows

    report = {"pgd-linf": {"eps": [0.0, 2 / 255, 8 / 255], "accuracy": [0.98, 0.5, 0.01], "rows": []},
              "fgsm-linf": {"eps": [0.0], "accuracy": [0.98]}}
    rows = robustness_rows(report)
    assert rows[:2] == [("pgd-linf", "0.0", "0.980"), ("pgd-linf", "2/255", "0.500")]
    assert ("fgsm-linf", "0.0", "0.980") in rows
    assert robustness_rows(None) == [] and robustness_rows({"x": 1}) == []


async def test_end_to_end_train_attack_and_dream(tmp_path, tiny_dataset):
    """Train a probe, attack one of its images into another class, dream a class: all from the keys."""
    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 3})

    async def scenario():
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            await wait_for(pilot, lambda: app.state.run_dir is not None and not app.jobs.running(), 180, "training")
            image = str(next((tiny_dataset / "red").glob("*.png")))
            await pilot.press("5")
            screen = app.screen
            await wait_for(pilot, lambda: screen.model is not None and screen.model.run_dir, 60, "the model")
            screen.query_one("#attack-source").value = image
            screen.query_one("#attack-target").value = "blue"
            screen.query_one("#attack-eps").value = "16/255"
            screen.query_one("#attack-steps").value = "5"
            await pilot.press("escape", "a")
            await wait_for(pilot, lambda: screen.job is not None and screen.job.done.is_set(), 180, "the attack")
            await wait_for(pilot, lambda: len(screen.query_one("#attack-plot").history) == 5, 10, "five steps plotted")
            # the final event is handled after job.done: wait for what it draws
            await wait_for(pilot, lambda: "adversarial ·" in text_of(app, "#cap-adversarial"), 10, "the caption")
            assert screen.query_one("#img-adversarial").source is not None

            await pilot.press("6")
            dream = app.screen
            await wait_for(pilot, lambda: dream.model is not None, 60, "the model")
            dream.query_one("#dream-class").value = "green"
            dream.query_one("#dream-steps").value = "4"
            await pilot.press("escape", "d")
            await wait_for(pilot, lambda: dream.job is not None and dream.job.done.is_set(), 180, "the dream")
            await wait_for(pilot, lambda: dream.frame is not None, 10, "the dream frame")
            await wait_for(pilot, lambda: "probability" in text_of(app, "#dream-status"), 10, "the dream's summary")

    await run_with_timeout(scenario(), 600)


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
    job = registry.begin("probe", JobControl())
    seen = {}

    def fn(ctx):
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return {"ok": True}

    owner = Owner()
    t = threading.Thread(target=lambda: run_engine_job(owner, job, fn, registry))
    t.start()
    t.join(10)
    assert job.done.is_set() and not registry.running()
    assert isinstance(owner.messages[-1].event, JobFinished)
    if sys.platform.startswith("linux"):
        assert seen["nice"] >= os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICENESS
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


async def test_enter_in_a_field_gives_the_keys_back_to_the_screen(tmp_path):
    """Typing a target then Enter: the next key is a command again (2 switches to Model), not more text."""
    app = make_app(DEMO, runs_dir=str(tmp_path / "runs"))

    async def scenario():
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("5", "c", "7")
            field = app.focused
            assert field is not None and field.value == "7"
            await pilot.press("enter", "2")
            await pilot.pause()
            assert field.value == "7" and app.screen.TAB == "model"

    await run_with_timeout(scenario(), 60)


async def test_out_of_memory_in_a_job_explains_the_fix_and_the_app_keeps_running(tmp_path, tiny_dataset,
                                                                                   monkeypatch):
    """CUDA OOM injected into training: a modal with the workbench's fix; then the app trains again."""
    import torch

    from engine.models.classifier import Classifier

    real_features = Classifier.features
    oom = {"on": True}

    def features(self, x):
        if oom["on"]:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_features(self, x)

    monkeypatch.setattr(Classifier, "features", features)
    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 1})

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), 120, "the error modal")
            modal = app.screen
            assert modal.error_title == "Out of memory"
            assert "CUDA out of memory" in modal.cause and "20.00 GiB" in modal.cause
            assert "batch_size" in modal.fix and "Model screen (2)" in modal.fix
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen.TAB == "train" and not app.jobs.running()
            oom["on"] = False  # the user lowered the batch size: the next try trains
            await pilot.press("t")
            screen = app.screen
            await wait_for(pilot, lambda: "Done." in str(screen.query_one("#train-summary", Static).render()),
                           120, "the second run to finish")

    await run_with_timeout(scenario(), 300)
