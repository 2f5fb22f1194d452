"""The Model screen's learning-rate range test (l): run it as a job on the form's settings, draw its curve,
show the suggestion, and put it in the form (u). A base of tui.model.screen.ModelScreen."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.widgets import Static

from engine.core.events import Event, JobFailed, JobFinished, JobStarted, LogLine, ProgressAdvanced, StepEnded
from tui.jobs import RUNNING, STOPPING, RunningJob, run_engine_job
from tui.model.form import ConfigForm
from tui.model.lr_plot import LrPlot
from tui.screen import WorkbenchScreen


class LrFindActions(WorkbenchScreen):
    """lr-find's actions and job events; the screen composes #lr-panel, #lr-plot, #lr-status and #form."""

    def __init__(self) -> None:
        super().__init__()
        self.lr_job: RunningJob | None = None
        self.lr_points: list[tuple[float, float]] = []
        self.lr_result: dict = {}

    def action_lr_find(self) -> None:
        """l: the range test with the form's settings as a job (l again stops it)."""
        if self.lr_job is not None and self.lr_job.final is None:
            if self.lr_job.state == RUNNING:
                self.lr_job.control.stop()
                self.tlbench.refresh_job_status()
                self.show_lr()
            return
        if self.workbench.config_error:
            self.notify(self.workbench.config_error, title="Fix the settings first", severity="error")
            return
        if self.workbench.dataset is None:
            self.notify("Open a dataset on the Data screen (1) first.", severity="error")
            return
        self.lr_points, self.lr_result = [], {}
        self.query_one("#lr-panel").remove_class("hidden")
        self.query_one("#model-body").add_class("-lr")
        self.lr_job = self.start_job("lr-find")
        self.tlbench.set_job_status("lr-find", "lr-find starting")
        self.show_lr("starting (PyTorch, the dataset, the backbone) …")
        self.run_lr_find(self.lr_job)

    @work(thread=True, exclusive=True, group="lr-find", exit_on_error=False)
    def run_lr_find(self, job: RunningJob) -> None:
        workbench = self.workbench

        def lr_find_job(ctx):
            from engine.train.lr_find import lr_find  # torch: imported here, never on the UI thread

            return lr_find(workbench.train_config(), ctx)

        run_engine_job(self, job, lr_find_job, self.tlbench.jobs)

    def show_lr(self, note: str = "") -> None:
        """The panel's one line: the job's state, the step, the suggestion and what u does."""
        job = self.lr_job
        if job is None:
            return
        state = job.state
        text = Text.assemble(("lr-find ", "bold"), (state, "bold yellow" if state == STOPPING else "bold"))
        if note:
            text.append(f" · {note}")
        suggestion = self.lr_result.get("suggested_lr")
        if suggestion:
            text.append(" · suggested lr ")
            text.append(f"{suggestion:.1e}", "bold green")
            text.append(" — u puts it in the form", "dim")
        elif state == RUNNING:
            text.append(" — l stops", "dim")
        self.query_one("#lr-status", Static).update(text)

    def job_event(self, job: str, event: Event) -> None:
        if job != "lr-find":
            return
        plot = self.query_one("#lr-plot", LrPlot)
        if isinstance(event, StepEnded):
            self.lr_points.append((event.values.get("lr", 0.0), event.values.get("loss", float("nan"))))
            plot.set_points(self.lr_points)
            self.tlbench.set_job_status("lr-find", f"lr-find {event.step}/{event.steps}")
            self.show_lr(f"step {event.step}/{event.steps}")
        elif isinstance(event, ProgressAdvanced) and event.total:
            self.show_lr(f"{event.phase} {event.done:.0f}/{event.total:.0f}")
        elif isinstance(event, (LogLine, JobStarted)):
            if isinstance(event, LogLine) and not self.lr_points:
                self.show_lr(event.text[:60])
        elif isinstance(event, JobFinished):
            self.tlbench.set_job_status("lr-find", "")
            self.lr_result = dict(event.result)
            plot.set_points(self.lr_points, self.lr_result.get("suggested_lr"))
            if event.reason == "stopped":
                self.show_lr("stopped before a suggestion")
            elif not self.lr_result.get("suggested_lr"):
                self.show_lr("no suggestion: the loss did not fall (see the log in the run folder)")
            else:
                self.show_lr(f"{self.lr_result.get('points', len(self.lr_points))} steps")
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("lr-find", "")
            self.show_lr(f"{event.title}: {str(event.error)[:80]}")

    def action_use_lr(self) -> None:
        suggestion = self.lr_result.get("suggested_lr")
        if not suggestion:
            self.notify("No suggestion yet: l runs the learning-rate range test.", severity="warning")
            return
        if not self.query("#form"):
            return
        lr = float(f"{suggestion:.1e}")  # two significant digits: what a person would type
        self.query_one("#form", ConfigForm).set_value("lr", lr)
        self.show_lr(f"lr set to {lr:g}")
