"""3 Train: t start, space pause/resume, s stop; epoch, step, images/s, ETA; live log and curves; summary."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import ProgressBar, RichLog, Static

from engine.events import (
    BatchEnded,
    CheckpointSaved,
    EpochEnded,
    Event,
    JobFailed,
    JobFinished,
    JobStarted,
    LogLine,
    ProgressAdvanced,
)
from tui.jobs import RunningJob, run_engine_job
from tui.screen import WorkbenchScreen
from tui.train.curves import CurvePlot
from tui.train.progress import TrainProgress, clock


def epoch_line(event: EpochEnded) -> str:
    """'epoch 3/30  train loss 0.2955 acc 0.9263 · val loss 0.3942 acc 0.8886' (fits 80 columns)."""
    def part(split: str) -> str:
        values = [(name, event.metrics.get(f"{split}_{name}")) for name in ("loss", "acc")]
        shown = " ".join(f"{name} {v:.4f}" for name, v in values if isinstance(v, (int, float)))
        return f"{split} {shown}" if shown else ""

    return f"epoch {event.epoch}/{event.epochs}  " + " · ".join(p for p in (part("train"), part("val")) if p)


def summary_text(result: dict, reason: str) -> Text:
    """The final summary of a training job."""
    text = Text()
    if reason == "stopped":
        text.append("Stopped. ", "bold yellow")
    else:
        text.append("Done. ", "bold green")
    if "best_val_acc" in result:
        text.append(f"best val acc {result['best_val_acc']:.4f}", "bold")
        if "best_epoch" in result:
            text.append(f" (epoch {result['best_epoch']})")
        if "val_acc" in result:
            text.append(f" · last {result['val_acc']:.4f}")
    if "train_images" in result:
        text.append(f" · {result['train_images']} train / {result['val_images']} val images")
    if result.get("skipped_images"):
        text.append(f" · {result['skipped_images']} skipped")
    if result.get("feature_cache"):
        text.append(f" · feature cache {result['feature_cache']}")
    if "seconds" in result:
        text.append(f" · {clock(result['seconds'])}")
    if result.get("run_dir"):
        text.append(f"\nrun {Path(result['run_dir']).name}", "dim")
        if reason == "completed":
            text.append(" — 4 Results · 7 Runs", "dim")
    return text


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

    def compose_body(self) -> ComposeResult:
        yield Static("", id="train-status")
        yield ProgressBar(id="train-progress", show_eta=False, total=100)
        with Horizontal(id="curves"):
            yield CurvePlot("loss", [("train_loss", "train"), ("val_loss", "val")], id="loss-plot")
            yield CurvePlot("accuracy", [("train_acc", "train"), ("val_acc", "val")], id="acc-plot")
        yield RichLog(id="train-log", max_lines=2000, wrap=True, markup=False, highlight=False)
        # Always two lines, so the layout (and the log's scroll position) never jumps when a job ends.
        yield Static("", id="train-summary")

    def on_mount(self) -> None:
        self.query_one("#train-progress", ProgressBar).update(total=100, progress=0)
        self.show_idle()

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done.is_set()

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
        self.query_one("#train-summary", Static).update(Text(
            "t starts training with the Model screen's settings (2); the summary of the run appears here.", "dim"))

    def state_changed(self) -> None:
        if not self.running and not self.finished_once:
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
        self.progress = TrainProgress()
        self.run_dir = None
        self.query_one("#train-summary", Static).update(Text("Running — space pauses, s stops (the last "
                                                             "checkpoint is kept).", "dim"))
        self.query_one("#train-log", RichLog).clear()
        self.query_one("#loss-plot", CurvePlot).set_history([])
        self.query_one("#acc-plot", CurvePlot).set_history([])
        self.query_one("#train-progress", ProgressBar).update(total=100, progress=0)
        self.query_one("#train-status", Static).update("Starting (PyTorch, the dataset scan, the backbone) …")
        self.tlbench.set_job_status("train", "train starting")
        self.job = self.start_job("train")
        self.run_training(self.job)

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def run_training(self, job: RunningJob) -> None:
        workbench = self.workbench

        def train_job(ctx):
            from engine.training import train  # torch: imported here, never on the UI thread

            return train(workbench.train_config(), ctx)

        run_engine_job(self, job, train_job, self.tlbench.jobs)

    def action_pause(self) -> None:
        if not self.running:
            self.notify("No training job is running: t starts one.", severity="warning")
            return
        control = self.job.control
        if control.paused:
            control.resume()
            self.tlbench.set_job_status("train", "train " + self._short())
        else:
            control.pause()
            self.query_one("#train-status", Static).update("Paused — space resumes, s stops.")
            self.tlbench.set_job_status("train", "train paused")

    def action_stop(self) -> None:
        if not self.running:
            self.notify("No training job is running.", severity="warning")
            return
        self.job.control.stop()
        self.query_one("#train-status", Static).update("Stopping after the current step …")

    def action_clear_log(self) -> None:
        self.query_one("#train-log", RichLog).clear()

    # ------------------------------------------------------------------------------------ events

    def _short(self) -> str:
        p = self.progress
        if p.epochs:
            return f"{p.epoch}/{p.epochs}"
        if p.total:
            return f"{p.phase} {100 * p.done / p.total:.0f}%"
        return p.phase or "…"

    def job_event(self, job: str, event: Event) -> None:
        if job != "train":
            return
        log = self.query_one("#train-log", RichLog)
        if isinstance(event, LogLine):
            style = {"warning": "yellow", "error": "red"}.get(event.level, "")
            log.write(Text(event.text, style))
        elif isinstance(event, JobStarted) and event.run_dir:
            self.run_dir = event.run_dir
            if event.description:
                log.write(Text(event.description, "bold"))
        elif isinstance(event, (ProgressAdvanced, BatchEnded, EpochEnded)):
            self.progress.update(event)
            if isinstance(event, EpochEnded):
                row = self.progress.history[-1]
                self.query_one("#loss-plot", CurvePlot).add(row)
                self.query_one("#acc-plot", CurvePlot).add(row)
                log.write(Text(epoch_line(event)))
            self.show_progress()
        elif isinstance(event, CheckpointSaved):
            log.write(Text(f"checkpoint {Path(event.path).name} (epoch {event.epoch})", "dim"))
        elif isinstance(event, JobFinished):
            self.finished(event)
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("train", "")
            self.query_one("#train-status", Static).update(Text(f"Failed: {event.title}. t to try again.", "red"))
            log.write(Text(f"failed: {event.error}", "red"))

    def show_progress(self) -> None:
        p = self.progress
        if not (self.job and self.job.control.paused):
            self.query_one("#train-status", Static).update(p.line() or "running …")
        fraction = p.fraction
        if fraction is not None:
            self.query_one("#train-progress", ProgressBar).update(total=100, progress=100 * fraction)
        self.tlbench.set_job_status("train", "train " + self._short())

    def finished(self, event: JobFinished) -> None:
        self.tlbench.set_job_status("train", "")
        result = dict(event.result)
        summary = self.query_one("#train-summary", Static)
        summary.update(summary_text(result, event.reason))
        self.finished_once = True
        if event.reason == "completed":
            self.query_one("#train-progress", ProgressBar).update(total=100, progress=100)
        self.query_one("#train-status", Static).update(
            ("Finished" if event.reason == "completed" else "Stopped") + " — t trains again.")
        run_dir = result.get("run_dir") or self.run_dir
        if run_dir:
            self.workbench.run_dir = Path(run_dir)
            self.workbench.changed()
            self._seen_version = self.workbench.version
        if event.reason == "completed" and "best_val_acc" in result:
            self.notify(f"best val acc {result['best_val_acc']:.4f} — 4 Results, 7 Runs", title="Training done")
