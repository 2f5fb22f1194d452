"""The Runs screen's jobs on a run: export its model (checked against `tlbench predict`), predict images with it,
and write its HTML report (of the marked runs: their comparison) to share. A widget with its jobs: the status
line under the runs (#runs-job); the dialogs ask, this line, a notification and a results screen answer."""

from __future__ import annotations

import os

from textual import work

from engine.cli.reproduce import train_command
from engine.core.events import JobFailed, JobFinished
from engine.core.jobs import JobFn
from tui.base_app import workbench_of
from tui.engine_calls import export_run, load_run_model, predict_paths, resolve_device
from tui.engine_calls import report_job as write_report
from tui.jobs import RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.run_view import RunView
from tui.runs.dialogs import ExportDialog, PredictDialog, PredictionsScreen
from tui.state import display_path
from tui.widgets.fitline import FitLine, Part

PREDICT_TOP_K = 3


class RunJobs(FitLine):
    """The last export, prediction or report, in one line; `export`, `predict` and `report` start them."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.predicting: tuple[str, str] = ("", "")  # (run name, path) of the last prediction asked for

    @work(thread=True, exclusive=False, group="run-jobs", exit_on_error=False)
    def run_job(self, job: RunningJob, fn: JobFn) -> None:
        run_engine_job(self, job, fn, workbench_of(self).jobs)

    def start(self, name: str, fn: JobFn, *parts: Part | str) -> None:
        """Say what starts, show the job in the tab bar, run it."""
        self.set_parts(*parts)
        app = workbench_of(self)
        app.set_job_status(name, name)
        self.run_job(app.begin_job(name), fn)

    # ------------------------------------------------------------------------------------ report

    def report(self, views: list[RunView]) -> None:
        """One HTML file of a run, or of several runs compared."""
        if workbench_of(self).jobs.running("report"):
            self.notify("Already writing a report: where it went shows when it is done.", severity="warning")
            return
        what = views[0].name if len(views) == 1 else f"{len(views)} marked runs"
        self.start("report", report_job([str(v.run_dir) for v in views]), "Writing the report of ",
                   Part(what, shrink=True, least=12, tail=0.6), " (Grad-CAM on the CPU) …")

    def on_job_report_finished(self, message: JobEvent[JobFinished]) -> None:
        event = message.event
        workbench_of(self).set_job_status("report", "")
        r = event.result
        if event.reason != "completed" or "path" not in r:
            self.update("Report stopped.")
            return
        self.set_parts(Part("report", "bold"), f" {r['bytes'] / 1e6:.1f} MB · ",
                       Part(display_path(r["path"]), shrink=True, least=16, tail=0.7))
        # the whole path and the scp line, to copy: the reader of the report is not in this terminal
        self.notify(f"{r['path']}\nFetch it with:\n{r['scp']}", title="Report written", timeout=30)

    def on_job_report_failed(self, message: JobEvent[JobFailed]) -> None:
        workbench_of(self).set_job_status("report", "")
        self.update(f"Report failed: {message.event.title}")

    # ------------------------------------------------------------------------------------ export

    def export(self, view: RunView) -> None:
        """Ask for the format, then export the run's model and check it against the run."""
        if workbench_of(self).jobs.running("export"):
            self.notify("Already exporting: the result shows here.", severity="warning")
            return

        def chosen(fmt: str | None) -> None:
            if fmt:
                self.start("export", export_job(str(view.run_dir), fmt),
                           f"Exporting to {fmt} (loading the model, then checking the export) … ",
                           Part(view.name, shrink=True, least=12, tail=0.6))

        self.app.push_screen(ExportDialog(view.name), chosen)

    def on_job_export_finished(self, message: JobEvent[JobFinished]) -> None:
        event = message.event
        workbench_of(self).set_job_status("export", "")
        r = event.result
        if event.reason != "completed" or "path" not in r:
            self.update("Export stopped.")
            return
        size = f"{r['bytes'] / 1e6:.1f} MB" if isinstance(r.get("bytes"), int) else ""
        self.set_parts(Part(f"exported {r.get('format', '')}", "bold"),
                       f" · {size} · checked: |Δp| ≤ {r.get('max_abs_diff', float('nan')):.1e}",
                       Part(" vs tlbench predict", optional=True), " · ",
                       Part(display_path(r["path"]), shrink=True, least=16, tail=0.7))

    def on_job_export_failed(self, message: JobEvent[JobFailed]) -> None:
        workbench_of(self).set_job_status("export", "")
        self.update(f"Export failed: {message.event.title}")

    # ------------------------------------------------------------------------------------ predict

    def predict(self, view: RunView, device: str) -> None:
        """Ask for an image or a folder (the image picked last, offered), then classify it with the run's model."""
        if view.status in ("failed", "running") or not view.has_checkpoint:
            self.notify(f"{view.name} has no model to predict with yet ({view.status}).", severity="warning")
            return
        if workbench_of(self).jobs.running("predict"):
            self.notify("Already predicting: the results show when ready.", severity="warning")
            return
        picked = workbench_of(self).state.picked_image

        def chosen(path: str | None) -> None:
            if path:
                self.predicting = (view.name, path)
                self.start("predict", predict_job(str(view.run_dir), path, device), "Predicting ",
                           Part(display_path(path), shrink=True, least=12, tail=0.7), " (loading the model) …")

        self.app.push_screen(PredictDialog(view.name, picked.path if picked else ""), chosen)

    def on_job_predict_finished(self, message: JobEvent[JobFinished]) -> None:
        workbench_of(self).set_job_status("predict", "")
        results = message.event.result.get("results") or []
        failed = sum(1 for r in results if "error" in r)
        name, path = self.predicting
        self.set_parts(f"predicted {len(results) - failed} image(s)" + (f", {failed} unreadable" if failed else ""),
                       " in ", Part(display_path(path), shrink=True, least=12, tail=0.7))
        if results:
            self.app.push_screen(PredictionsScreen(
                [f"{len(results)} image(s) in ", Part(display_path(path), shrink=True, least=12, tail=0.7),
                 f" · top {PREDICT_TOP_K} of ", Part(name, shrink=True, least=12, tail=0.6)], results))

    def on_job_predict_failed(self, message: JobEvent[JobFailed]) -> None:
        workbench_of(self).set_job_status("predict", "")
        self.update(f"Predict failed: {message.event.title}")


def export_job(run_dir: str, fmt: str) -> JobFn:
    def job(ctx):
        return export_run(run_dir, fmt, ctx)

    return job


def report_job(run_dirs: list[str | os.PathLike]) -> JobFn:
    """One HTML file of the runs (engine.report), with the command that reproduces each (engine.cli.reproduce)."""
    def job(ctx):
        return write_report(run_dirs, None, ctx, train_command)

    return job


def predict_job(run_dir: str, path: str, device: str) -> JobFn:
    """The run's model on an image or a folder: top predictions per image (engine.serve.predict)."""
    def job(ctx):
        dev = resolve_device(device)
        ctx.check()
        model, record = load_run_model(run_dir, dev)
        ctx.check()
        return {"results": predict_paths(model, record, [path], PREDICT_TOP_K, dev)}

    return job
