"""4 Results: the confusion matrix, per-class accuracy, the most-confused pairs and the top losses."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from engine.events import Event, JobFailed, JobFinished
from tui.data.grid import Thumb, ThumbnailGrid
from tui.data.preview import PreviewScreen
from tui.jobs import RunningJob, run_engine_job
from tui.results.confusion import ConfusionGrid
from tui.results.report import RunView, load_run_view
from tui.screen import WorkbenchScreen
from tui.state import ImageRef

NO_RUN = ("No run chosen yet. Train one on the Train screen (3), or pick one on the Runs screen (7) "
          "and press u to use it.")


def loss_thumbs(losses: list[dict]) -> list[Thumb]:
    return [Thumb(r["path"], f"{r.get('true', '?')}→{r.get('predicted', '?')} {float(r.get('prob_predicted', 0)):.2f}",
                  str(r.get("true", ""))) for r in losses]


def fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


class ResultsScreen(WorkbenchScreen):
    TAB = "results"
    TITLE = "Results"
    HELP = ("How the chosen run did: choose a confusion cell (enter) to see its images; l lists the top losses; "
            "e evaluates the run again.")

    BINDINGS = [
        Binding("l", "top_losses", "Losses", id="results.top_losses", tooltip="Show the top losses' images"),
        # m and i stay out of the footer (it must fit 80 columns); ? and ctrl+p list them
        Binding("m", "focus_matrix", "Matrix", id="results.matrix", tooltip="Move to the confusion matrix",
                show=False),
        Binding("i", "focus_images", "Images", id="results.images", tooltip="Move to the images", show=False),
        Binding("a", "attack", "Attack", id="results.attack", tooltip="Attack the highlighted image (5)"),
        Binding("r", "reload", "Reload", id="results.reload", tooltip="Read the run's files again"),
        Binding("e", "evaluate", "Evaluate", id="results.evaluate",
                tooltip="Evaluate the run's best.pt on its validation split and rewrite its report"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: RunView | None = None
        self.shown_images: list[Thumb] = []

    def compose_body(self) -> ComposeResult:
        yield Static(NO_RUN, id="results-header", markup=False)
        with Horizontal(id="results-top"):
            with Vertical(id="matrix-box"):
                yield ConfusionGrid(id="matrix")
                yield Static("", id="matrix-status", markup=False)
            yield DataTable(id="per-class", cursor_type="row")
        with Horizontal(id="results-bottom"):
            yield DataTable(id="confused", cursor_type="row")
            with Vertical(id="loss-box"):
                yield Static("", id="images-title", markup=False)
                yield ThumbnailGrid(self.tlbench.thumbnails, cell_width=12, id="loss-images")
        yield Static("", id="results-empty", markup=False)

    def on_mount(self) -> None:
        self.query_one("#per-class", DataTable).add_columns("class", "prec", "recall", "acc", "n")
        self.query_one("#confused", DataTable).add_columns("true", "predicted", "count")
        self.show_view(None)

    def state_changed(self) -> None:
        run_dir = self.workbench.run_dir
        if run_dir is None:
            self.show_view(None)
        elif self.view is None or self.view.run_dir != run_dir:
            self.action_reload()

    def action_reload(self) -> None:
        if self.workbench.run_dir is not None:
            self.query_one("#results-header", Static).update(f"Reading {self.workbench.run_dir.name} …")
            self.run_load(self.start_job("results"), self.workbench.run_dir)

    @work(thread=True, exclusive=True, group="results", exit_on_error=False)
    def run_load(self, job: RunningJob, run_dir: Path) -> None:
        run_engine_job(self, job, lambda ctx: {"view": load_run_view(run_dir)}, self.tlbench.jobs)

    def action_evaluate(self) -> None:
        run_dir = self.workbench.run_dir
        if run_dir is None:
            self.notify("No run chosen: pick one on the Runs screen (7).", severity="warning")
            return
        if self.tlbench.jobs.running("train"):
            self.notify("Training is running: its report is written when it ends.", severity="warning")
            return
        if self.tlbench.jobs.running("eval"):
            self.notify("Already evaluating; the report shows when it is written.", severity="warning")
            return
        self.query_one("#results-header", Static).update(f"Evaluating {run_dir.name} …")
        self.tlbench.set_job_status("eval", "eval")
        self.run_evaluate(self.start_job("eval"), run_dir, self.workbench.config.get("device") or "auto")

    @work(thread=True, exclusive=True, group="eval", exit_on_error=False)
    def run_evaluate(self, job: RunningJob, run_dir: Path, device: str) -> None:
        def evaluate(ctx):
            from engine.evaluation import evaluate_run

            return evaluate_run(run_dir, ctx=ctx, device=device)

        run_engine_job(self, job, evaluate, self.tlbench.jobs)

    def job_event(self, job: str, event: Event) -> None:
        if job == "results" and isinstance(event, JobFinished) and "view" in event.result:
            self.show_view(event.result["view"])
        elif job == "eval" and isinstance(event, (JobFinished, JobFailed)):
            self.tlbench.set_job_status("eval", "")
            self.action_reload()  # the new report, or (after a failure) the run as it was

    # ------------------------------------------------------------------------------------ showing

    def show_view(self, view: RunView | None) -> None:
        self.view = view
        report = view.report if view else None
        for part in ("#results-top", "#results-bottom"):
            self.query_one(part).set_class(report is None, "hidden")
        empty = self.query_one("#results-empty", Static)
        empty.set_class(report is not None, "hidden")
        header = self.query_one("#results-header", Static)
        if report is None:
            self.set_focus(None)
        if view is None:
            header.update("Results")
            empty.update(NO_RUN)
            return
        if report is None:
            best = fmt(view.best_val_acc, 4)
            header.update(f"{view.name}")
            why = view.report_error or ("This run has no report.json yet: it is still training, or it ended "
                                        "before its evaluation. e evaluates its best.pt now (the confusion "
                                        "matrix, per-class accuracy, the most-confused pairs and the mistakes).")
            empty.update(f"{why}\n\nWhat the run recorded: best validation accuracy {best} over "
                         f"{len(view.metrics)} epoch(s); its curves are on the Runs screen (7).")
            return
        top5 = f" · top-5 {fmt(report.get('top5'))}" if report.get("top5") is not None else ""
        header.update(f"{view.name} · {report.get('split', 'val')} · n {report.get('n', '-')} · "
                      f"accuracy {fmt(report.get('accuracy'))}{top5} · {report.get('checkpoint', '')}")
        classes = report["classes"]
        grid = self.query_one("#matrix", ConfusionGrid)
        grid.set_matrix(classes, report["confusion"])
        per_class = self.query_one("#per-class", DataTable)
        per_class.clear()
        for row in report["per_class"]:
            per_class.add_row(str(row.get("class", "?")), Text(fmt(row.get("precision")), justify="right"),
                              Text(fmt(row.get("recall")), justify="right"),
                              Text(fmt(row.get("accuracy")), justify="right"),
                              Text(str(row.get("support", "-")), justify="right"))
        confused = self.query_one("#confused", DataTable)
        confused.clear()
        for row in report["most_confused"]:
            confused.add_row(str(row.get("true")), str(row.get("predicted")), Text(str(row.get("count")), justify="right"))
        self.action_top_losses()
        self.query_one("#matrix-status", Static).update("enter shows a cell's images")
        grid.focus()

    def show_images(self, title: str, thumbs: list[Thumb], empty: str) -> None:
        self.shown_images = thumbs
        self.query_one("#images-title", Static).update(title)
        self.query_one("#loss-images", ThumbnailGrid).set_items(thumbs, empty_text=empty)

    def cell_images(self, true: int, predicted: int) -> None:
        if self.view is None or self.view.report is None:
            return
        report = self.view.report
        classes = report["classes"]
        t, p = classes[true], classes[predicted]
        count = report["confusion"][true][predicted] if report["confusion"] else 0
        listed = report["mistakes"] if report["mistakes"] is not None else report["top_losses"]
        losses = [r for r in listed if str(r.get("true")) == t and str(r.get("predicted")) == p]
        if true == predicted:
            self.show_images(f"{t} correctly classified: {count}", [],
                             "the report lists wrong predictions only; l shows the top losses")
            return
        shown = f"{len(losses)} of {count}" if len(losses) < count else str(count)
        source = "highest loss first" if report["mistakes"] is not None else "from the top losses"
        self.show_images(f"true {t} → predicted {p}: {shown} image(s), {source}", loss_thumbs(losses),
                         "none of these are listed in this older report: e evaluates the run again and lists them all")

    # ------------------------------------------------------------------------------------ events

    @on(ConfusionGrid.CellHighlighted, "#matrix")
    def cell_highlighted(self, event: ConfusionGrid.CellHighlighted) -> None:
        if self.view is None or self.view.report is None:
            return
        report = self.view.report
        classes = report["classes"]
        row = report["confusion"][event.true]
        count, total = row[event.predicted], sum(row)
        share = f" ({count / total:.0%} of {classes[event.true]})" if total else ""
        self.query_one("#matrix-status", Static).update(
            f"true {classes[event.true]} → predicted {classes[event.predicted]}: {count}{share} · enter images")

    @on(ConfusionGrid.CellChosen, "#matrix")
    def cell_chosen(self, event: ConfusionGrid.CellChosen) -> None:
        if type(event) is ConfusionGrid.CellChosen:
            self.cell_images(event.true, event.predicted)

    @on(DataTable.RowSelected, "#confused")
    def pair_chosen(self, event: DataTable.RowSelected) -> None:
        if self.view is None or self.view.report is None:
            return
        classes = self.view.report["classes"]
        row = self.view.report["most_confused"][event.cursor_row]
        if row.get("true") in classes and row.get("predicted") in classes:
            t, p = classes.index(row["true"]), classes.index(row["predicted"])
            self.query_one("#matrix", ConfusionGrid).select(t, p)
            self.cell_images(t, p)

    @on(ThumbnailGrid.Opened, "#loss-images")
    def image_opened(self, event: ThumbnailGrid.Opened) -> None:
        grid = event.grid

        def follow(index: int | None) -> None:
            if index is not None:
                grid.cursor = index

        self.app.push_screen(PreviewScreen(grid.items, event.index, self.tlbench.thumbnails), follow)

    # ------------------------------------------------------------------------------------ actions

    def action_top_losses(self) -> None:
        if self.view is None or self.view.report is None:
            self.notify("No report to show: " + ("choose a run (7)" if self.view is None else "not evaluated yet"),
                        severity="warning")
            return
        losses = self.view.report["top_losses"]
        self.show_images(f"top losses: {len(losses)} most confident mistakes (true→predicted prob)",
                         loss_thumbs(losses), "no mistakes listed")

    def action_focus_matrix(self) -> None:
        self.query_one("#matrix", ConfusionGrid).focus()

    def action_focus_images(self) -> None:
        self.query_one("#loss-images", ThumbnailGrid).focus()

    def action_attack(self) -> None:
        grid = self.query_one("#loss-images", ThumbnailGrid)
        if not grid.items:
            self.notify("No image highlighted: choose a confusion cell or the top losses first.", severity="warning")
            return
        item = grid.items[grid.cursor]
        self.workbench.picked_image = ImageRef(item.path, item.label, "results")
        self.workbench.changed()
        self.app.switch_mode("attack")
        self.notify(f"Attack source: {os.path.basename(item.path)}", timeout=3)
