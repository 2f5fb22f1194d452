"""The Train screen tells the truth: one job state shown the same everywhere and at once (D11), a progress bar
that measures the phase it names (D10), quitting that says "stopping…" and exits promptly (D15), a typed 0
epochs rejected with its reason (D9). A scripted stand-in for engine.train.job.train keeps most of these fast
and deterministic; the real engine trains a probe, stops a long run, and meets an out-of-memory error."""

from __future__ import annotations

import time

import pytest
from helpers.tui import burst, make_app, run_with_timeout, text_of, wait_for
from textual.widgets import ProgressBar, Static

from engine.core.events import BatchEnded, EpochEnded, JobFailed, JobFinished, LogLine, ProgressAdvanced
from tui.errors import ErrorModal
from tui.messages import JobEvent


class ScriptedTraining:
    """engine.train.job.train's events at a walking pace: a scan, a pause before training, then steps."""

    def __init__(self) -> None:
        self.fail = False
        self.hold_after_scan = True
        self.steps_sent = 0
        self.save_seconds = 0.0  # how long "saving last.pt" takes once stopped

    def __call__(self, config, ctx):
        from engine.core.jobs import JobStopped

        try:
            return self.run(config, ctx)
        except JobStopped:
            time.sleep(self.save_seconds)
            raise

    def run(self, config, ctx):
        ctx.progress(ProgressAdvanced("scan", 10, 10, "files"), force=True)
        ctx.log("backbone: efficientnet_lite0 (shipped), input 64 px")
        while self.hold_after_scan:
            ctx.check()
            time.sleep(0.02)
        epochs = config.epochs or 5
        for epoch in range(1, epochs + 1):
            for step in range(1, 6):
                ctx.check()
                if self.fail:
                    raise RuntimeError("the scripted training broke")
                ctx.progress(BatchEnded(epoch, step, 5, 1.0 / step, 50.0), force=True)
                self.steps_sent += 1
                while self.steps_sent >= 4 and epoch == 1 and step == 4 and not ctx.stopped and not self.fail:
                    ctx.check()
                    time.sleep(0.02)  # parked at epoch 1, step 4/5 until the test moves on
            ctx.emit(EpochEnded(epoch, epochs, {"val_acc": 0.5}, 0.1))
        return {"run_dir": ""}


@pytest.fixture
def scripted(monkeypatch):
    import engine.train.job

    fake = ScriptedTraining()
    monkeypatch.setattr(engine.train.job, "train", fake)
    return fake


async def start(pilot, config_epochs=6):
    app = pilot.app
    await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
    await pilot.press("3", "t")
    return app.screen


def bar(screen) -> tuple[str, float]:
    return (str(screen.query_one("#train-phase", Static).render()),
            screen.query_one("#train-progress", ProgressBar).percentage or 0.0)


async def test_the_bar_measures_its_phase_and_resets_between_phases(tiny_dataset, scripted):
    """D10: not the finished scan's 100% while the next phase prepares, not 100% at epoch 1 step 4/5."""
    app = make_app(tiny_dataset, config={"mode": "head", "epochs": 6})

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await start(pilot)
            await wait_for(pilot, lambda: screen.progress.between_phases, 60, "the scan to finish")
            await pilot.pause()
            assert bar(screen) == ("preparing", 0.0)
            assert "scan done · preparing" in text_of(app, "#train-status")
            scripted.hold_after_scan = False
            await wait_for(pilot, lambda: screen.progress.step == 4, 30, "epoch 1 step 4/5")
            await pilot.pause()
            label, fraction = bar(screen)
            assert label == "training" and fraction == pytest.approx(0.8 / 6, abs=1e-6)
            assert "epoch 1/6" in text_of(app, "#train-status")
            await pilot.press("s")
            await wait_for(pilot, lambda: screen.job.done.is_set(), 30, "the stop")
            await pilot.pause()
            label, fraction = bar(screen)
            assert label == "stopped · training" and fraction < 1.0
            assert screen.query_one("#train-progress").has_class("-stopped")

    await run_with_timeout(scenario(), 120)


async def test_one_job_state_shown_the_same_everywhere_and_at_once(tiny_dataset, scripted):
    """D11: pause, resume, stop and failure change the top line, the bottom line and the tab bar together."""
    app = make_app(tiny_dataset, config={"mode": "head", "epochs": 6})

    def lines():
        return text_of(app, "#train-status"), text_of(app, "#train-summary"), app.job_status

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await start(pilot)
            scripted.hold_after_scan = False
            await wait_for(pilot, lambda: screen.progress.step >= 1, 60, "training")
            top, bottom, tab = lines()
            assert top.startswith("Running") and "space pauses" in bottom and "paused" not in tab
            await pilot.press("space")  # no waiting for the job's next event: all three change now
            top, bottom, tab = lines()
            assert top.startswith("Paused") and "space resumes" in bottom and tab.endswith("· paused")
            await pilot.press("space")
            top, bottom, tab = lines()
            assert top.startswith("Running") and "space pauses" in bottom and "paused" not in tab
            scripted.fail = True
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), 30, "the failure")
            await pilot.press("escape")
            await pilot.pause()
            top, bottom, tab = lines()
            assert top.startswith("Failed") and "scripted training broke" in top
            assert bottom.startswith("Failed.") and "Running" not in bottom and "space" not in bottom
            assert tab == "" and bar(screen)[0].startswith("failed")

    await run_with_timeout(scenario(), 120)


async def test_quitting_during_training_says_stopping_at_once_and_stops_the_job(tiny_dataset, scripted):
    """D15, the mechanism: q sets the job's stop event and shows "stopping…" before anything else happens;
    the app waits at most QUIT_TIMEOUT (under the README's 5 s) for the job, then exits."""
    app = make_app(tiny_dataset, config={"mode": "head", "epochs": 6})
    seen: dict = {}

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await start(pilot)
            scripted.hold_after_scan = False
            scripted.save_seconds = 1.5
            await wait_for(pilot, lambda: screen.progress.step >= 1, 60, "training")
            job = screen.job
            history = []  # (tab bar, Train's top line) at each change of the tab bar's text
            app.watch(app, "job_status", lambda v: history.append((v, text_of(app, "#train-status"))), init=False)
            await pilot.press("q")
            seen["stop"] = job.control.stopped
            seen["first"] = history[0]
            seen["toasts"] = [n.message for n in app._notifications]
        return job

    job = await run_with_timeout(scenario(), 120)
    tab, top = seen["first"]  # the first thing q changed
    assert seen["stop"] and tab.endswith("stopping…") and top.startswith("Stopping…")
    assert any("stopping…" in m for m in seen["toasts"])
    assert job.done.is_set() and app.QUIT_TIMEOUT < 5


async def test_zero_epochs_is_rejected_with_the_reason_like_other_bad_values(tiny_dataset):
    """D9: 0 epochs typed (in one burst, as over SSH) is refused with its reason, never replaced by 30; an
    empty field means the mode's default, and says which."""
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        await pilot.press("2")
        await wait_for(pilot, lambda: bool(app.screen.query("#form")) and text_of(app, "#config-status"), 120,
                       "the form")
        assert "30 epochs (the probe default)" in text_of(app, "#config-status")
        app.screen.query_one("#field-mode").focus()
        await pilot.pause()
        for typed in ("0", "-3"):
            field = app.screen.query_one("#field-epochs")
            field.value = ""
            app.screen.query_one("#field-mode").focus()
            await pilot.pause()
            await burst(pilot, "tab", *typed)
            await wait_for(pilot, lambda t=typed, f=field: f.value == t, 10, f"{typed} typed into epochs")
            status = text_of(app, "#config-status")
            assert f"--epochs {typed} is out of range" in status and "30 epochs" not in status
            assert app.screen.query_one("#row-epochs").has_class("-invalid")
        await burst(pilot, "escape", "3", "t")
        await wait_for(pilot, lambda: app.current_mode == "train", 10, "Train")
        await pilot.pause()
        assert not app.jobs.running("train")
        assert "--epochs -3" in text_of(app, "#train-status")


async def test_the_tab_bar_keeps_a_jobs_state_visible_at_80_columns(tiny_dataset):
    """At 80x24 the tabs shrink to their numbers before a job's state is cut off."""
    from engine.core.jobs import JobControl
    from tui.widgets.tabbar import TabBar

    app = make_app(tiny_dataset)
    async with app.run_test(size=(80, 24)) as pilot:
        job = app.jobs.begin("lr-find", JobControl())
        app.set_job_status("lr-find", "lr-find 9/100")
        job.control.stop()
        app.refresh_job_status()
        await pilot.pause()
        shown = str(app.screen.query_one(TabBar).render())
        assert shown.rstrip().endswith("lr-find 9/100 · stopping…") and "1 Data" in shown
        assert " 2 " in shown and "2 Model" not in shown  # the other tabs by their number
        app.jobs.end(job)


def test_torch_is_imported_by_one_thread_at_a_time(monkeypatch):
    """Two threads importing torchvision at once failed ("cannot import name 'InterpolationMode' from
    partially initialized module"): the warm-up, the registry and every job that may import torch go
    through tui.jobs.import_engine (one lock); jobs that never do (the scan) do not wait for it."""
    import threading

    import tui.app
    import tui.jobs
    from engine.core.jobs import JobControl

    calls: list[str] = []
    monkeypatch.setattr(tui.jobs, "import_engine", lambda: calls.append(threading.current_thread().name))
    monkeypatch.setattr(tui.app, "import_engine", lambda: calls.append("app"))

    class Owner:
        def post_message(self, message):
            return True

    registry = tui.jobs.JobRegistry()
    for name in ("scan", "train", "lr-find"):
        tui.jobs.run_engine_job(Owner(), registry.begin(name, JobControl()), lambda ctx: {}, registry)
    assert len(calls) == 2  # train and lr-find, not the scan
    tui.app.warm_engine()
    assert calls[-1] == "app"


async def test_toasts_leave_the_final_summary_readable(tiny_dataset):
    """Toasts sit above the bottom lines (the final summary, the key bar), at 80x24 too."""
    from textual.widgets._toast import Toast

    app = make_app(tiny_dataset)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        await pilot.press("3")
        app.notify("A training job is running: s stops it. " * 2, title="Train")
        await wait_for(pilot, lambda: bool(app.screen.query(Toast)), 10, "the toast")
        await pilot.pause()
        summary = app.screen.query_one("#train-summary").region
        for toast in app.screen.query(Toast):
            assert not toast.region.overlaps(summary), (toast.region, summary)
            assert toast.region.width <= 48


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


async def test_the_log_keeps_a_long_lines_last_column_when_the_scrollbar_appears(tiny_dataset):
    """Issue 24 item 7: "lr 4.25e-0" — a line wrapped before the log had a scrollbar lost its last column
    when the scrollbar came. The log keeps the scrollbar's gutter from the start."""
    from textual.widgets import RichLog

    app = make_app(tiny_dataset)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        line = ("epochs 2-6: training the last 2 stage(s) (blocks.5, blocks.6) and the head; lr 4.25e-04 for the "
                "head, 1.06e-04 for blocks.6 down to 4.25e-05 for blocks.5")
        screen.post_message(JobEvent("train", LogLine(line)))
        await pilot.pause()
        for i in range(30):  # enough lines for a scrollbar
            screen.post_message(JobEvent("train", LogLine(f"line {i}")))
        await pilot.pause()
        await pilot.pause()
        log = screen.query_one("#train-log", RichLog)
        assert log.max_scroll_y > 0  # the scrollbar is there
        width = log.scrollable_content_region.width
        assert all(strip.cell_length <= width for strip in log.lines)
        shown = "".join(strip.text for strip in log.lines)
        assert "4.25e-04" in shown.replace(" ", "") or "4.25e-04" in shown


def test_the_final_line_names_the_checkpoint_it_reports():
    """One model accuracy everywhere: Train's last line is best.pt's, says which epoch of how many, and gives
    the last epoch's apart; auto without a holdout says its number is cross-validated."""
    from tui.train.screen import summary_text

    done = {"best_val_acc": 0.878, "best_epoch": 3, "epochs": 5, "val_acc": 0.865, "seconds": 83,
            "run_dir": "/runs/oxford-pets-0001"}
    first = summary_text(done, "completed", 80).plain.splitlines()[0]
    assert first.startswith("Done. best.pt val acc 0.8780 (epoch 3 of 5) · last epoch 0.8650"), first
    same = summary_text({**done, "best_epoch": 5, "val_acc": 0.878}, "completed", 80).plain
    assert "(epoch 5 of 5)" in same and "last epoch" not in same
    auto = {"best_val_acc": 0.91, "val_acc": 0.91, "best_epoch": 1, "epochs": 1, "cv_accuracy": 0.91,
            "holdout_accuracy": None, "accuracy_source": "cross-validated estimate from the search"}
    assert "best.pt CV acc 0.9100" in summary_text(auto, "completed").plain
    held = {**auto, "holdout_accuracy": 0.88, "best_val_acc": 0.88, "val_acc": 0.88}
    assert "best.pt val acc 0.8800" in summary_text(held, "completed").plain
