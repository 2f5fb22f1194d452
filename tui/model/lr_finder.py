"""The Model screen's learning-rate range test (l): a panel with its job. It runs engine.train.lr_find on the form's
settings, draws the loss against the learning rate as the steps come in, and says the suggestion, which `u` on the
screen puts in the form."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from engine.core.events import JobFailed, JobFinished, LogLine, ProgressAdvanced, StepEnded
from tui.base_app import workbench_of
from tui.engine_calls import lr_find
from tui.jobs import RUNNING, STOPPING, RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.model.lr_plot import LrPlot

JOB = "lr-find"


class LrFinder(Vertical):
    """The status line #lr-status over the curve #lr-plot; hidden until `start`."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.job: RunningJob | None = None
        self.points: list[tuple[float, float]] = []
        self.result: dict = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="lr-status")
        yield LrPlot(id="lr-plot")

    @property
    def busy(self) -> bool:
        """The job has not sent its final event yet (running, paused or stopping)."""
        return self.job is not None and self.job.final is None

    @property
    def suggestion(self) -> float | None:
        return self.result.get("suggested_lr") or None

    def start(self) -> None:
        """The range test with the workbench's settings, as a job."""
        self.points, self.result = [], {}
        self.remove_class("hidden")
        app = workbench_of(self)
        self.job = app.begin_job(JOB)
        app.set_job_status(JOB, "lr-find starting")
        self.say("starting (PyTorch, the dataset, the backbone) …")
        self.run_lr_find(self.job)

    def stop(self) -> None:
        """l while it runs: stopping… shows at once, here and in the tab bar."""
        if self.job is not None and self.job.state == RUNNING:
            self.job.control.stop()
            workbench_of(self).refresh_job_status()
            self.say()

    def close(self) -> bool:
        """Hide the panel once its job is over; False while it runs."""
        if self.has_class("hidden") or self.busy:
            return False
        self.add_class("hidden")
        return True

    @work(thread=True, exclusive=True, group=JOB, exit_on_error=False)
    def run_lr_find(self, job: RunningJob) -> None:
        workbench = workbench_of(self).state

        def lr_find_job(ctx):
            return lr_find(workbench.train_config(), ctx)

        run_engine_job(self, job, lr_find_job, workbench_of(self).jobs)

    def say(self, note: str = "") -> None:
        """The panel's one line: the job's state, the step, the suggestion and what u does."""
        job = self.job
        if job is None:
            return
        state = job.state
        text = Text.assemble(("lr-find ", "bold"), (state, "bold yellow" if state == STOPPING else "bold"))
        if note:
            text.append(f" · {note}")
        if self.suggestion:
            text.append(" · suggested lr ")
            text.append(f"{self.suggestion:.1e}", "bold green")
            text.append(" — u puts it in the form", "dim")
        elif state == RUNNING:
            text.append(" — l stops", "dim")
        self.query_one("#lr-status", Static).update(text)

    def on_job_lr_find_step_ended(self, message: JobEvent[StepEnded]) -> None:
        event = message.event
        self.points.append((event.values.get("lr", 0.0), event.values.get("loss", float("nan"))))
        self.query_one("#lr-plot", LrPlot).set_points(self.points)
        workbench_of(self).set_job_status(JOB, f"lr-find {event.step}/{event.steps}")
        self.say(f"step {event.step}/{event.steps}")

    def on_job_lr_find_progress_advanced(self, message: JobEvent[ProgressAdvanced]) -> None:
        event = message.event
        if event.total:
            self.say(f"{event.phase} {event.done:.0f}/{event.total:.0f}")

    def on_job_lr_find_log_line(self, message: JobEvent[LogLine]) -> None:
        if not self.points:  # before the first step: what it is preparing
            self.say(message.event.text[:60])

    def on_job_lr_find_finished(self, message: JobEvent[JobFinished]) -> None:
        event = message.event
        workbench_of(self).set_job_status(JOB, "")
        self.result = dict(event.result)
        self.query_one("#lr-plot", LrPlot).set_points(self.points, self.suggestion)
        if event.reason == "stopped":
            self.say("stopped before a suggestion")
        elif not self.suggestion:
            self.say("no suggestion: the loss did not fall (see the log in the run folder)")
        else:
            self.say(f"{self.result.get('points', len(self.points))} steps")

    def on_job_lr_find_failed(self, message: JobEvent[JobFailed]) -> None:
        workbench_of(self).set_job_status(JOB, "")
        self.say(f"{message.event.title}: {str(message.event.error)[:80]}")
