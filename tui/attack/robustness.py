"""The Attack screen's robustness panel: the run's accuracy under attack at each eps, as its report.json holds it,
and the sweep that measures it (R), run as this widget's job; what the sweep has to say goes up as Reported, for
the screen's status line."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from engine.adversarial.params import RobustnessParams
from engine.core.events import JobFailed, JobFinished, ProgressAdvanced
from engine.core.files import read_json
from engine.core.jobs import JobFn
from tui.base_app import workbench_of
from tui.engine_calls import robustness_job
from tui.jobs import RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.state import display_path
from tui.widgets.fitline import FitLine, Part

JOB = "robustness"
# The sweep R runs from the workbench: engine.adversarial.attacks' defaults (PGD L∞, eps 0 to 8/255, 10 steps) on at most
# this many validation images, so it takes minutes, not hours, on a CPU; `tlbench robustness` does any size.
SWEEP_LIMIT = 256


def sweep_job(run_dir: str, device: str) -> JobFn:
    """engine.adversarial.attacks' robustness job for a run (imported on the worker thread: it imports torch)."""
    def job(ctx):
        return robustness_job(RobustnessParams(run_dir=run_dir, limit=SWEEP_LIMIT, device=device), ctx)

    return job


def robustness_rows(robustness) -> list[tuple[str, str, str]]:
    """(sweep, eps, accuracy) rows from report.json's "robustness": {"pgd-linf": {"eps": [...], "accuracy":
    [...]}, …} as `tlbench robustness` writes it (a single sweep without the key is read too)."""
    def eps_text(e) -> str:
        if isinstance(e, (int, float)) and 0 < e < 1:
            return f"{e * 255:g}/255"
        return str(e)

    if not isinstance(robustness, dict):
        return []
    sweeps = {"": robustness} if "eps" in robustness else robustness
    rows = []
    for key, sweep in sweeps.items():
        if isinstance(sweep, dict) and isinstance(sweep.get("eps"), list) and isinstance(sweep.get("accuracy"), list):
            for e, a in zip(sweep["eps"], sweep["accuracy"]):
                rows.append((str(key), eps_text(e), f"{a:.3f}" if isinstance(a, (int, float)) else str(a)))
    return rows


class RobustnessPanel(Vertical):
    """The table of the run's sweeps; `start` runs a sweep, `stop` stops it."""

    class Reported(Message):
        """A line about the sweep for the screen's status line."""

        def __init__(self, *parts: Part | str) -> None:
            super().__init__()
            self.parts = parts

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.job: RunningJob | None = None

    def compose(self) -> ComposeResult:
        yield FitLine("robustness (val accuracy) · R runs", classes="caption", id="robustness-title")
        yield DataTable(id="robustness", cursor_type="row", show_cursor=False)

    def on_mount(self) -> None:
        self.query_one("#robustness", DataTable).add_columns("sweep", "eps", "accuracy")

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done.is_set()

    def show(self) -> None:
        """The sweeps saved in the current run's report (none yet: R runs one)."""
        run_dir = workbench_of(self).state.run_dir
        # which run the rows are of: they change with the run in use
        self.query_one("#robustness-title", FitLine).set_parts(
            "sweeps of " if run_dir else "sweeps", Part(run_dir.name if run_dir else "", shrink=True, least=8),
            Part(" · R runs", optional=True))
        table = self.query_one("#robustness", DataTable)
        table.clear()
        report = run_dir / "report.json" if run_dir else None
        rows = []
        if report is not None and report.exists():
            try:
                rows = robustness_rows(read_json(report).get("robustness"))
            except Exception:  # noqa: BLE001 - a damaged report shows no sweep; Results says why
                rows = []
        for row in rows:
            table.add_row(*row)
        if not rows:
            table.add_row("-", "-", "none yet: R" if run_dir else "no run")

    def start(self, run_dir: Path, device: str) -> None:
        self.post_message(self.Reported("Robustness sweep of ", Part(run_dir.name, shrink=True, least=12, tail=0.6),
                                        Part(" (loading the model and the validation split) …", optional=True)))
        app = workbench_of(self)
        app.set_job_status(JOB, "sweep")
        self.job = app.begin_job(JOB)
        self.run_sweep(self.job, sweep_job(str(run_dir), device))

    def stop(self) -> None:
        if self.job is not None:
            self.job.control.stop()
            self.post_message(self.Reported("Stopping the sweep after this batch …"))

    @work(thread=True, exclusive=True, group=JOB, exit_on_error=False)
    def run_sweep(self, job: RunningJob, fn: JobFn) -> None:
        run_engine_job(self, job, fn, workbench_of(self).jobs)

    def on_job_robustness_progress_advanced(self, message: JobEvent[ProgressAdvanced]) -> None:
        event = message.event
        if event.phase == "robustness" and event.total:
            share = event.done / event.total
            self.post_message(self.Reported(
                f"Robustness sweep: {share:.0%} ({event.done:.0f}/{event.total:.0f} image-attacks)",
                Part(" · s stops", optional=True)))
            workbench_of(self).set_job_status(JOB, f"sweep {share:.0%}")

    def on_job_robustness_finished(self, message: JobEvent[JobFinished]) -> None:
        workbench_of(self).set_job_status(JOB, "")
        self.show()
        event = message.event
        r = event.result
        if event.reason == "completed" and r.get("rows"):
            first, last = r["rows"][0], r["rows"][-1]  # the panel lists every eps; the line, the range
            self.post_message(self.Reported(
                "Robustness of ", Part(Path(r.get("run_dir", "")).name, shrink=True, least=8, tail=0.6),
                f": {r.get('key', '')} on {r.get('images')} images: {first['accuracy']:.3f} at "
                f"{first['eps_text']} → {last['accuracy']:.3f} at {last['eps_text']}",
                # the path and its words go together (issue 24: " · saved in" was left without its path)
                Part(display_path(Path(r.get("run_dir", "")) / "report.json"), shrink=True, least=12, tail=0.7,
                     optional=True, lead=" · saved in ")))
        else:
            self.post_message(self.Reported("Robustness sweep stopped: nothing saved."))

    def on_job_robustness_failed(self, message: JobEvent[JobFailed]) -> None:
        workbench_of(self).set_job_status(JOB, "")
        self.post_message(self.Reported(f"Robustness sweep failed: {message.event.title}"))
