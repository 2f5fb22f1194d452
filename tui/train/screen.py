"""3 Train: t start, space pause/resume, s stop; epoch, step, images/s, ETA; live log and curves; summary."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ProgressBar, RichLog, Static

from engine.core.events import (
    BatchEnded,
    CheckpointSaved,
    EpochEnded,
    JobFailed,
    JobFinished,
    JobStarted,
    LogLine,
    ProgressAdvanced,
)
from engine.core.jobs import JobFn
from engine.train.config import DEFAULT_EPOCHS
from tui.base_app import TrainJobFn
from tui.engine_calls import train
from tui.jobs import DONE, FAILED, PAUSED, RUNNING, STOPPED, STOPPING, RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.screen import WorkbenchScreen
from tui.train.progress import TrainProgress
from tui.widgets.curves import CurvePlot
from tui.widgets.text import clock, middle_truncate


def epoch_line(event: EpochEnded) -> str:
    """'epoch 3/30  train loss 0.2955 acc 0.9263 · val loss 0.3942 acc 0.8886' (fits 80 columns)."""
    def part(split: str) -> str:
        values = [(name, event.metrics.get(f"{split}_{name}")) for name in ("loss", "acc")]
        shown = " ".join(f"{name} {v:.4f}" for name, v in values if isinstance(v, (int, float)))
        return f"{split} {shown}" if shown else ""

    return f"epoch {event.epoch}/{event.epochs}  " + " · ".join(p for p in (part("train"), part("val")) if p)


# How each job state reads, and what the keys do in it (one table: the top line, the bottom line and the
# tab bar all come from RunningJob.state).
STATE_WORDS = {RUNNING: ("Running", "bold green"), PAUSED: ("Paused", "bold yellow"),
               STOPPING: ("Stopping…", "bold yellow"), STOPPED: ("Stopped", "bold yellow"),
               FAILED: ("Failed", "bold red"), DONE: ("Done", "bold green")}
STATE_HINTS = {RUNNING: "space pauses · s stops (the last checkpoint is kept)",
               PAUSED: "space resumes · s stops (the last checkpoint is kept)",
               STOPPING: "stopping after the current step; last.pt is being saved …"}


class TrainPlanned(Message):
    """The settings a training job started with, resolved on its thread: the epochs it will run (the job calls
    the `planned` it is given, from its thread)."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs


def summary_text(result: dict, reason: str, width: int = 0) -> Text:
    """The final summary of a training job in two lines that each fit `width` (0: no limit): the result
    first, then where it is; the less telling parts go first when the line is short."""
    first = Text()
    if reason == "stopped":
        first.append("Stopped. ", "bold yellow")
    else:
        first.append("Done. ", "bold green")
    if "best_val_acc" in result:
        # the model the run keeps is best.pt, the one Results, eval and predict use: the line names it, so its
        # accuracy is never read as the last epoch's (which it says after, when that epoch was another one)
        first.append("best.pt ", "bold")
        if result.get("accuracy_source") and result.get("holdout_accuracy") is None \
                and isinstance(result.get("cv_accuracy"), (int, float)):
            first.append(f"CV acc {result['cv_accuracy']:.4f}", "bold")  # auto without a holdout: no val split
        else:
            first.append(f"val acc {result['best_val_acc']:.4f}", "bold")
        best, epochs = result.get("best_epoch"), result.get("epochs")
        if isinstance(best, int):
            first.append(f" (epoch {best}" + (f" of {epochs})" if isinstance(epochs, int) else ")"))
        if isinstance(result.get("val_acc"), (int, float)) and best != epochs:
            first.append(f" · last epoch {result['val_acc']:.4f}")
    if "seconds" in result:
        first.append(f" · {clock(result['seconds'])}")
    extras = []
    if "train_images" in result:
        extras.append(f"{result['train_images']} train / {result['val_images']} val images")
    if result.get("skipped_images"):
        extras.append(f"{result['skipped_images']} skipped")
    if result.get("feature_cache"):
        extras.append(f"feature cache {result['feature_cache']}")
    for extra in extras:
        if not width or first.cell_len + 3 + len(extra) <= width:
            first.append(f" · {extra}")
    second = Text()
    if result.get("run_dir"):
        tail = " — 4 Results · 7 Runs" if reason == "completed" else ""
        name = Path(result["run_dir"]).name
        if width:
            name = middle_truncate(name, max(12, width - 4 - len(tail)))
        second.append(f"run {name}{tail}", "dim")
    return Text("\n").join([first, second]) if second else first


class TrainScreen(WorkbenchScreen):
    TAB = "train"
    TITLE = "Train"
    HELP = "Train with the Model screen's settings; the log and curves update live."

    BINDINGS = [
        Binding("t", "start", "Start", id="train.start", tooltip="Start training with the Model screen's settings"),
        Binding("space", "pause", "Pause", id="train.pause", tooltip="Pause or resume the running job"),
        Binding("s", "stop", "Stop", id="train.stop", tooltip="Stop the job (checkpoints are kept)"),
        Binding("c", "clear_log", "Clear", id="train.clear", tooltip="Clear the log"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.job: RunningJob | None = None
        self.progress = TrainProgress()
        self.run_dir: str | None = None
        self.finished_once = False
        self.result: dict = {}
        self.failure: str = ""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="train-status")
        with Horizontal(id="train-progress-row"):
            yield Static("", id="train-phase")
            yield ProgressBar(id="train-progress", show_eta=False, total=100)
        with Horizontal(id="curves"):
            yield CurvePlot("loss", [("train_loss", "train"), ("val_loss", "val")], id="loss-plot")
            yield CurvePlot("accuracy", [("train_acc", "train"), ("val_acc", "val")], id="acc-plot")
        # min_width: RichLog renders at least 78 columns by default, wider than its content at 80x24 (padding,
        # scrollbar): the last two columns of a long line were cut ("lr 4.25e-0", issue 24)
        yield RichLog(id="train-log", max_lines=2000, wrap=True, markup=False, highlight=False, min_width=20)
        # Always two lines, so the layout (and the log's scroll position) never jumps when a job ends.
        yield Static("", id="train-summary")

    def on_mount(self) -> None:
        self.query_one("#train-progress", ProgressBar).update(total=100, progress=0)
        # The app refreshes the tab bar's job text when any job's state changes (quitting stops this one
        # too): the Train screen's lines follow the same change at the same moment.
        self.watch(self.app, "job_status", lambda _: self.show_state(), init=False)
        self.show_idle()

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done.is_set() and self.job.final is None

    @property
    def state(self) -> str | None:
        return self.job.state if self.job is not None else None

    def show_idle(self) -> None:
        cfg = self.workbench.config
        dataset = self.workbench.info.name if self.workbench.info else (
            self.workbench.dataset.name if self.workbench.dataset else "no dataset")
        mode = cfg.get("mode", "probe")
        backbone = cfg.get("backbone", "efficientnet_lite0")
        line = f"Ready: {mode} · {backbone} · {dataset}."
        if self.workbench.config_error:
            line = f"Settings need a fix on the Model screen (2): {self.workbench.config_error}"
        self.query_one("#train-status", Static).update(line)
        self.query_one("#train-phase", Static).update("")
        self.query_one("#train-summary", Static).update(Text(
            "t starts training with the Model screen's settings (2); the summary of the run appears here.", "dim"))

    def state_changed(self) -> None:
        if self.job is None:
            self.show_idle()

    # ------------------------------------------------------------------------------------ actions

    def action_start(self) -> None:
        if self.running:
            self.notify("A training job is running: s stops it.", severity="warning")
            return
        if self.workbench.config_error:
            self.notify(self.workbench.config_error, title="Fix the settings first (2 Model)", severity="error")
            return
        if self.workbench.dataset is None:
            self.notify("Open a dataset on the Data screen (1) first.", severity="error")
            return
        workbench = self.workbench

        def train_job(ctx, planned):
            config = workbench.train_config()
            if config.mode in DEFAULT_EPOCHS:
                planned(config.epochs or DEFAULT_EPOCHS[config.mode])
            return train(config, ctx)

        self.start(train_job, "train starting")

    def start(self, job_fn: TrainJobFn, status: str, history: list[dict] | None = None) -> RunningJob:
        """Run a training job on this screen — a new run (t), or a stopped run resumed from Runs — with a fresh
        log, progress and summary; space pauses and s stops it here. The curves start with `history` (a
        resumed run's finished epochs: its whole history, not only the resumed part). `job_fn(ctx, planned)`
        runs on a worker thread and may call `planned(epochs)` once it knows the epochs."""
        self.progress = TrainProgress()
        self.run_dir = None
        self.result, self.failure = {}, ""
        self.query_one("#train-log", RichLog).clear()
        self.query_one("#loss-plot", CurvePlot).set_history(history or [])
        self.query_one("#acc-plot", CurvePlot).set_history(history or [])
        self.job = self.start_job("train")
        self.tlbench.set_job_status("train", status)
        self.show_state()

        def planned(epochs: int) -> None:  # on the job's thread: post_message is thread-safe
            self.post_message(TrainPlanned(epochs))

        self.run_training(self.job, lambda ctx: job_fn(ctx, planned))
        return self.job

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def run_training(self, job: RunningJob, job_fn: JobFn) -> None:
        run_engine_job(self, job, job_fn, self.tlbench.jobs)

    def on_train_planned(self, message: TrainPlanned) -> None:
        self.progress.planned_epochs = message.epochs
        self.show_progress()

    def action_pause(self) -> None:
        if not self.running or self.job is None:
            self.notify("No training job is running: t starts one.", severity="warning")
            return
        control = self.job.control
        if control.stopped:
            return
        if control.paused:
            control.resume()
        else:
            control.pause()
        self.tlbench.refresh_job_status()  # the tab bar, and through it this screen's lines, at once
        self.show_state()

    def action_stop(self) -> None:
        if not self.running or self.job is None:
            self.notify("No training job is running.", severity="warning")
            return
        self.job.control.stop()
        self.tlbench.refresh_job_status()
        self.show_state()

    def action_clear_log(self) -> None:
        self.query_one("#train-log", RichLog).clear()

    # ------------------------------------------------------------------------------------ events

    def _short(self) -> str:
        p = self.progress
        if p.total_epochs and p.phase in ("epochs", "train", "val"):
            return f"{p.epoch}/{p.total_epochs}"
        if p.total and not p.between_phases:
            return f"{p.phase} {100 * p.done / p.total:.0f}%"
        return p.bar_label

    @property
    def train_log(self) -> RichLog:
        return self.query_one("#train-log", RichLog)

    def on_job_train_log_line(self, message: JobEvent[LogLine]) -> None:
        event = message.event
        self.train_log.write(Text(event.text, {"warning": "yellow", "error": "red"}.get(event.level, "")))
        if self.progress.phase_finished:
            self.progress.update(event)
            self.show_progress()

    def on_job_train_started(self, message: JobEvent[JobStarted]) -> None:
        event = message.event
        if event.run_dir:
            self.run_dir = event.run_dir
            if event.description:
                self.train_log.write(Text(event.description, "bold"))

    def on_job_train_progress_advanced(self, message: JobEvent[ProgressAdvanced]) -> None:
        self.progress.update(message.event)
        self.show_progress()

    def on_job_train_batch_ended(self, message: JobEvent[BatchEnded]) -> None:
        self.progress.update(message.event)
        self.show_progress()

    def on_job_train_epoch_ended(self, message: JobEvent[EpochEnded]) -> None:
        self.progress.update(message.event)
        row = self.progress.history[-1]
        self.query_one("#loss-plot", CurvePlot).add(row)
        self.query_one("#acc-plot", CurvePlot).add(row)
        self.train_log.write(Text(epoch_line(message.event)))
        self.show_progress()

    def on_job_train_checkpoint_saved(self, message: JobEvent[CheckpointSaved]) -> None:
        event = message.event
        self.train_log.write(Text(f"checkpoint {Path(event.path).name} (epoch {event.epoch})", "dim"))

    def on_job_train_finished(self, message: JobEvent[JobFinished]) -> None:
        self.finished(message.event)

    def on_job_train_failed(self, message: JobEvent[JobFailed]) -> None:
        event = message.event
        self.failure = f"{event.title}: {event.error}"
        self.tlbench.set_job_status("train", "")
        self.train_log.write(Text(f"failed: {event.error}", "red"))
        self.show_state()

    def show_progress(self) -> None:
        if self.job is not None and self.job.final is None:
            self.tlbench.set_job_status("train", "train " + self._short())
        self.show_state()

    def show_state(self) -> None:
        """The top line (state and numbers), the bar and the bottom line, all from the job's one state."""
        if self.job is None:
            return
        state = self.job.state
        word, style = STATE_WORDS[state]
        p = self.progress
        status = Text.assemble((word, style))
        numbers = p.line(eta=state not in (STOPPED, DONE, FAILED))
        if state == FAILED:
            status.append(f": {self.failure or 'the job failed'}", "red")
            status.append(" — t to try again", "dim")
        elif state in (STOPPED, DONE):
            status.append(" · " + numbers if numbers else "")
            status.append(" — t trains again", "dim")
        elif numbers:
            status.append(" · " + numbers)
        elif state == RUNNING:
            status.append(" · starting (PyTorch, the dataset scan, the backbone) …")
        self.query_one("#train-status", Static).update(status)
        self.show_bar(state)
        summary = self.query_one("#train-summary", Static)
        if state in STATE_HINTS:
            summary.update(Text(STATE_HINTS[state], "dim"))
        elif state == FAILED:
            summary.update(Text.assemble(("Failed. ", "bold red"), (self.failure, "red"),
                                         ("\nthe run's files so far are kept" + (f" in {Path(self.run_dir).name}"
                                                                                  if self.run_dir else ""), "dim")))
        else:
            width = summary.content_region.width or self.size.width - 2
            summary.update(summary_text(self.result, "stopped" if state == STOPPED else "completed", width))

    def show_bar(self, state: str) -> None:
        """The bar measures the phase it names; stopped and failed say so (the bar keeps where it got)."""
        p = self.progress
        bar = self.query_one("#train-progress", ProgressBar)
        fraction = p.fraction
        if state == DONE:
            fraction, label = 1.0, "done"
        elif state in (STOPPED, FAILED, STOPPING, PAUSED):
            label = {STOPPED: "stopped", FAILED: "failed", STOPPING: "stopping", PAUSED: "paused"}[state]
            label += f" · {p.bar_label}" if p.phase and not p.between_phases else ""
        else:
            label = p.bar_label
        bar.update(total=100, progress=100 * (fraction or 0.0))
        bar.set_class(state in (STOPPED, STOPPING), "-stopped")
        bar.set_class(state == FAILED, "-failed")
        bar.set_class(state == PAUSED, "-paused")
        self.query_one("#train-phase", Static).update(label)

    def finished(self, event: JobFinished) -> None:
        self.tlbench.set_job_status("train", "")
        self.result = dict(event.result)
        self.finished_once = True
        self.show_state()
        run_dir = self.result.get("run_dir") or self.run_dir
        if run_dir:
            self.share(run_dir=Path(run_dir))
