"""The Runs screen's jobs on one run: export its model (checked against `tlbench predict`), predict images
with it, and write its HTML report (of the marked runs: their comparison) to share; the dialogs ask, the status
line, a notification and a results screen answer. A base of tui.runs.screen.RunsScreen."""

from __future__ import annotations

from engine.core.events import Event, JobFailed, JobFinished
from engine.core.jobs import JobFn
from tui.jobs import RunningJob
from tui.results.report import RunView
from tui.runs.dialogs import ExportDialog, PredictDialog, PredictionsScreen
from tui.screen import WorkbenchScreen
from tui.state import display_path
from tui.widgets.fitline import FitLine, Part

PREDICT_TOP_K = 3


class RunJobActions(WorkbenchScreen):
    """Export and predict; RunsScreen provides the run under the cursor and the job runner."""

    def __init__(self) -> None:
        super().__init__()
        self.predicting: tuple[str, str] = ("", "")  # (run name, path) of the last prediction asked for

    def current(self) -> RunView | None:
        raise NotImplementedError

    def run_job(self, job: RunningJob, fn: JobFn) -> None:
        raise NotImplementedError

    def report_targets(self) -> list[RunView]:
        """The marked runs, else the run under the cursor."""
        raise NotImplementedError

    def action_report(self) -> None:
        views = self.report_targets()
        if not views:
            self.notify("No run to report.", severity="warning")
            return
        if self.tlbench.jobs.running("report"):
            self.notify("Already writing a report: where it went shows when it is done.", severity="warning")
            return
        what = views[0].name if len(views) == 1 else f"{len(views)} marked runs"
        self.query_one("#runs-job", FitLine).set_parts(
            "Writing the report of ", Part(what, shrink=True, least=12, tail=0.6), " (Grad-CAM on the CPU) …")
        self.tlbench.set_job_status("report", "report")
        self.run_job(self.start_job("report"), report_job([str(v.run_dir) for v in views]))

    def report_event(self, event: Event) -> None:
        status = self.query_one("#runs-job", FitLine)
        if isinstance(event, JobFinished):
            self.tlbench.set_job_status("report", "")
            r = event.result
            if event.reason != "completed" or "path" not in r:
                status.update("Report stopped.")
                return
            status.set_parts(Part("report", "bold"), f" {r['bytes'] / 1e6:.1f} MB · ",
                             Part(display_path(r["path"]), shrink=True, least=16, tail=0.7))
            # the whole path and the scp line, to copy: the reader of the report is not in this terminal
            self.notify(f"{r['path']}\nFetch it with:\n{r['scp']}", title="Report written", timeout=30)
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("report", "")
            status.update(f"Report failed: {event.title}")

    def action_export(self) -> None:
        view = self.current()
        if view is None:
            self.notify("No run to export.", severity="warning")
            return
        if self.tlbench.jobs.running("export"):
            self.notify("Already exporting: the result shows here.", severity="warning")
            return

        def chosen(fmt: str | None) -> None:
            if fmt:
                self.query_one("#runs-job", FitLine).set_parts(
                    f"Exporting to {fmt} (loading the model, then checking the export) … ",
                    Part(view.name, shrink=True, least=12, tail=0.6))
                self.tlbench.set_job_status("export", "export")
                self.run_job(self.start_job("export"), export_job(str(view.run_dir), fmt))

        self.app.push_screen(ExportDialog(view.name), chosen)

    def export_event(self, event: Event) -> None:
        status = self.query_one("#runs-job", FitLine)
        if isinstance(event, JobFinished):
            self.tlbench.set_job_status("export", "")
            r = event.result
            if event.reason != "completed" or "path" not in r:
                status.update("Export stopped.")
                return
            size = f"{r['bytes'] / 1e6:.1f} MB" if isinstance(r.get("bytes"), int) else ""
            status.set_parts(Part(f"exported {r.get('format', '')}", "bold"),
                             f" · {size} · checked: |Δp| ≤ {r.get('max_abs_diff', float('nan')):.1e}",
                             Part(" vs tlbench predict", optional=True), " · ",
                             Part(display_path(r["path"]), shrink=True, least=16, tail=0.7))
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("export", "")
            status.update(f"Export failed: {event.title}")

    def action_predict(self) -> None:
        view = self.current()
        if view is None:
            self.notify("No run to predict with.", severity="warning")
            return
        if view.status in ("failed", "running") or not view.has_checkpoint:
            self.notify(f"{view.name} has no model to predict with yet ({view.status}).", severity="warning")
            return
        if self.tlbench.jobs.running("predict"):
            self.notify("Already predicting: the results show when ready.", severity="warning")
            return
        picked = self.workbench.picked_image

        def chosen(path: str | None) -> None:
            if path:
                self.query_one("#runs-job", FitLine).set_parts(
                    "Predicting ", Part(display_path(path), shrink=True, least=12, tail=0.7), " (loading the model) …")
                self.tlbench.set_job_status("predict", "predict")
                self.predicting = (view.name, path)
                self.run_job(self.start_job("predict"),
                             predict_job(str(view.run_dir), path, self.workbench.config.get("device") or "auto"))

        self.app.push_screen(PredictDialog(view.name, picked.path if picked else ""), chosen)

    def predict_event(self, event: Event) -> None:
        status = self.query_one("#runs-job", FitLine)
        if isinstance(event, JobFinished):
            self.tlbench.set_job_status("predict", "")
            results = event.result.get("results") or []
            failed = sum(1 for r in results if "error" in r)
            name, path = self.predicting
            status.set_parts(f"predicted {len(results) - failed} image(s)" + (f", {failed} unreadable" if failed else ""),
                             " in ", Part(display_path(path), shrink=True, least=12, tail=0.7))
            if results:
                self.app.push_screen(PredictionsScreen(
                    [f"{len(results)} image(s) in ", Part(display_path(path), shrink=True, least=12, tail=0.7),
                     f" · top {PREDICT_TOP_K} of ", Part(name, shrink=True, least=12, tail=0.6)], results))
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("predict", "")
            status.update(f"Predict failed: {event.title}")


def export_job(run_dir: str, fmt: str) -> JobFn:
    def job(ctx):
        from engine.serve.export import export_run  # torch: imported on the worker thread

        return export_run(run_dir, fmt, ctx)

    return job


def report_job(run_dirs: list[str]) -> JobFn:
    """One HTML file of the runs (engine.report), with the command that reproduces each (engine.cli.reproduce)."""
    def job(ctx):
        from engine.cli.reproduce import train_command  # jinja2 and torch (Grad-CAM): on the worker thread
        from engine.report.render import report_job as write_report

        return write_report(run_dirs, None, ctx, train_command)

    return job


def predict_job(run_dir: str, path: str, device: str) -> JobFn:
    """The run's model on an image or a folder: top predictions per image (engine.serve.predict)."""
    def job(ctx):
        from engine.models.loading import load_run_model  # torch: on the worker thread
        from engine.runtime.devices import resolve_device
        from engine.serve.predict import predict_paths

        dev = resolve_device(device)
        ctx.check()
        model, record = load_run_model(run_dir, dev)
        ctx.check()
        return {"results": predict_paths(model, record, [path], PREDICT_TOP_K, dev)}

    return job
