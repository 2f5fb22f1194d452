"""4 Results: the confusion matrix, per-class precision/recall/F1, the most-confused pairs and the mistakes.

Made for 80x24 first: the header leads with the accuracy (the run's name shrinks from the middle), class
names are shortened from the middle, the matrix keeps its headers in view while it scrolls and toggles to
row percentages (n), and each mistake's caption names both classes and the probability.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from engine.core.events import JobFailed, JobFinished
from tui.engine_calls import evaluate_run
from tui.jobs import RunningJob, finished_value, run_engine_job, value_job
from tui.messages import JobEvent
from tui.results.confusion import ConfusionGrid
from tui.results.losses import LossGrid, cell_rows, mistakes_total, percent
from tui.results.overview import MatrixOverview
from tui.results.per_class import SORTS, WORST, PerClassTable, fmt
from tui.results.top_losses import TopLossesScreen
from tui.run_view import RunView, auto_board, load_run_view, recipe_lines
from tui.screen import WorkbenchScreen
from tui.state import ImageRef
from tui.widgets.fitline import FitLine, Part, shorten_middle
from tui.widgets.grid import ThumbnailGrid
from tui.widgets.preview import PreviewScreen
from tui.widgets.tables import refill

NO_RUN = ("No run chosen yet. Train one on the Train screen (3), or pick one on the Runs screen (7) "
          "and press u to use it.")
WIDE = 100  # from this many columns on, names get more room and numbers a third decimal


class ResultsScreen(WorkbenchScreen):
    TAB = "results"
    TITLE = "Results"
    HELP = ("How the chosen run did: choose a confusion cell (enter) to see its images; n shows row percentages; "
            "o shows the whole matrix; s sorts the classes, w puts the worst first; l lists the top losses; "
            "e evaluates the run again.")

    HELP_PARTS = (("matrix", "The confusion matrix, when focused (m).", ConfusionGrid),)

    BINDINGS = [
        Binding("l", "top_losses", "Losses", id="results.top_losses", tooltip="Show the most confident mistakes"),
        Binding("L", "plot_top_losses", "Top losses", id="results.plot_top_losses", show=False,
                tooltip="The top losses over the whole screen with their Grad-CAM heatmaps (plot_top_losses)"),
        Binding("n", "normalise", "Row%", id="results.normalise",
                tooltip="The matrix in counts, or each row in percent of its true class"),
        # m and i stay out of the footer (it must fit 80 columns); ? and ctrl+p list them
        Binding("m", "focus_matrix", "Matrix", id="results.matrix", tooltip="Move to the confusion matrix",
                show=False),
        Binding("i", "focus_images", "Images", id="results.images", tooltip="Move to the images", show=False),
        Binding("o", "overview", "Whole", id="results.overview",
                tooltip="The whole confusion matrix on one screen; enter on a cell opens its images"),
        Binding("s", "sort_classes", "Sort", id="results.sort_classes", show=False,
                tooltip="Sort the classes by F1, recall, precision or images (worst first), or the report's order"),
        Binding("w", "worst_classes", "Worst", id="results.worst_classes", show=False,
                tooltip="The classes with the lowest F1 first"),
        Binding("b", "recipes", "Recipes", id="results.recipes", show=False,
                tooltip="An auto run's winning recipe and its leaderboard of recipes"),
        Binding("a", "attack", "To Attack", id="results.attack",
                tooltip="Take the highlighted image to the Attack screen (5) as its source; a there attacks it"),
        Binding("r", "reload", "Reload", id="results.reload", tooltip="Read the run's files again", show=False),
        Binding("e", "evaluate", "Evaluate", id="results.evaluate",
                tooltip="Evaluate the run's best.pt on its validation split and rewrite its report"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: RunView | None = None
        self.wide = False

    def compose_body(self) -> ComposeResult:
        yield FitLine(NO_RUN, id="results-header")
        with Horizontal(id="results-top"):
            with Vertical(id="matrix-box"):
                yield ConfusionGrid(id="matrix")
            yield PerClassTable(id="per-class")
        yield FitLine("", id="matrix-status")  # the whole width: both class names of a cell, whole at 80
        with Horizontal(id="results-bottom"):
            yield DataTable(id="confused", cursor_type="row")
            with Vertical(id="loss-box"):
                yield FitLine("", id="images-title")
                yield LossGrid(self.tlbench.thumbnails, cell_width=15, id="loss-images")
                yield FitLine("", id="loss-detail")
        yield Static("", id="results-empty", markup=False)

    def on_mount(self) -> None:
        self.wide = self.app.size.width >= WIDE
        self.show_view(None)

    def on_resize(self, event: events.Resize) -> None:
        wide = self.app.size.width >= WIDE
        if wide != self.wide:
            self.wide = wide
            if self.view is not None and self.view.report is not None:
                # after the new layout: tables refilled inside a resize kept their old column widths
                self.call_after_refresh(self.fill_tables, self.view.report)

    def state_changed(self) -> None:
        run_dir = self.workbench.run_dir
        if run_dir is None:
            self.show_view(None)
        elif self.view is None or self.view.run_dir != run_dir:
            self.action_reload()

    def action_reload(self) -> None:
        if self.workbench.run_dir is not None:
            self.query_one("#results-header", FitLine).set_parts(
                "Reading ", Part(self.workbench.run_dir.name, shrink=True, tail=0.6), " …")
            self.run_load(self.start_job("results"), self.workbench.run_dir)

    @work(thread=True, exclusive=True, group="results", exit_on_error=False)
    def run_load(self, job: RunningJob, run_dir: Path) -> None:
        run_engine_job(self, job, value_job(lambda ctx: load_run_view(run_dir)), self.tlbench.jobs)

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
        self.query_one("#results-header", FitLine).set_parts(
            "Evaluating ", Part(run_dir.name, shrink=True, tail=0.6), " …")
        self.tlbench.set_job_status("eval", "eval")
        self.run_evaluate(self.start_job("eval"), run_dir, self.workbench.config.get("device") or "auto")

    @work(thread=True, exclusive=True, group="eval", exit_on_error=False)
    def run_evaluate(self, job: RunningJob, run_dir: Path, device: str) -> None:
        def evaluate(ctx):
            return evaluate_run(run_dir, ctx=ctx, device=device)

        run_engine_job(self, job, evaluate, self.tlbench.jobs)

    def on_job_results_finished(self, message: JobEvent[JobFinished]) -> None:
        view = finished_value(message.event, RunView)
        if view is not None:
            self.show_view(view)

    def on_job_eval_finished(self, message: JobEvent[JobFinished]) -> None:
        self.tlbench.set_job_status("eval", "")
        self.action_reload()  # the new report

    def on_job_eval_failed(self, message: JobEvent[JobFailed]) -> None:
        self.tlbench.set_job_status("eval", "")
        self.action_reload()  # the run as it was (the error modal says why)

    # ------------------------------------------------------------------------------------ showing

    def show_view(self, view: RunView | None) -> None:
        self.view = view
        report = view.report if view else None
        for part in ("#results-top", "#matrix-status", "#results-bottom"):
            self.query_one(part).set_class(report is None, "hidden")
        empty = self.query_one("#results-empty", Static)
        empty.set_class(report is not None, "hidden")
        header = self.query_one("#results-header", FitLine)
        if report is None:
            self.set_focus(None)
        if view is None:
            header.update("Results")
            empty.update(NO_RUN)
            return
        if report is None:
            best = fmt(view.best_val_acc, 4)
            header.set_parts(Part(view.name, shrink=True, tail=0.6))
            if view.report_error:
                why = view.report_error
            elif view.status == "failed":
                why = (f"This run has nothing to evaluate: {view.status_detail}. The Runs screen (7) lists "
                       "every run with its status; train again on the Train screen (3).")
            else:
                why = ("This run has no report.json yet: it is still training, or it ended before its "
                       "evaluation. e evaluates its best.pt now (the confusion matrix, per-class precision and "
                       "recall, the most-confused pairs and the mistakes).")
            empty.update(f"{why}\n\nWhat the run recorded: best validation accuracy {best} over "
                         f"{len(view.metrics)} epoch(s); its curves are on the Runs screen (7).")
            return
        # the numbers first: on 80 columns the run's name gives way (from its middle), never the accuracy
        parts = [Part(f"accuracy {fmt(report.get('accuracy'))}", "bold")]
        # top-5 of 5 classes or fewer is 1.000 by construction: shown only where it says something
        if report.get("top5") is not None and len(report.get("classes") or []) > 5:
            parts.append(Part(f" · top-5 {fmt(report.get('top5'))}"))
        parts += [Part(f" · {report.get('n', '-')} {report.get('split', 'val')} images"),
                  Part(f" · {view.checkpoint_said} · ")]
        parts.append(Part(view.name, shrink=True, least=10, tail=0.6))
        if view.report_written:  # when these numbers were computed (a panel says which run and when)
            parts.append(Part(f" · {view.report_written[5:]}"))
        header.set_parts(*parts)
        grid = self.query_one("#matrix", ConfusionGrid)
        grid.set_matrix(report["classes"], report["confusion"])
        self.fill_tables(report)
        self.action_top_losses()
        board = auto_board(view)
        if board is not None:  # what auto chose, first: b lists every recipe it scored
            cv = board.get("cv_accuracy")
            self.query_one("#matrix-status", FitLine).set_parts(
                "auto chose ", Part(str(board["winner"]), "bold", shrink=True, least=16),
                f" · CV {cv:.3f}" if isinstance(cv, (int, float)) else "", Part(" · b: the recipes", optional=True))
        else:
            self.query_one("#matrix-status", FitLine).update("enter shows a cell's images · n percent of row")
        grid.focus()

    def fill_tables(self, report: dict) -> None:
        """Per-class precision, recall, F1 and support (tui.results.per_class); the most-confused pairs."""
        self.query_one("#per-class", PerClassTable).show(report["per_class"], self.wide)
        pair_w = 22 if self.wide else 12
        refill(self.query_one("#confused", DataTable), ("true", "→ predicted", "n"), [
            (shorten_middle(str(row.get("true")), pair_w), shorten_middle(str(row.get("predicted")), pair_w),
             Text(str(row.get("count")), justify="right")) for row in report["most_confused"]])

    def show_images(self, title: list[Part], rows: list[dict], empty: str) -> None:
        self.query_one("#images-title", FitLine).set_parts(*title)
        self.query_one("#loss-images", LossGrid).set_losses(rows, empty)
        if not rows:
            self.query_one("#loss-detail", FitLine).update("")

    def cell_images(self, true: int, predicted: int) -> None:
        if self.view is not None and self.view.report is not None:
            self.show_images(*cell_rows(self.view.report, true, predicted))

    def show_cell_status(self, true: int, predicted: int) -> None:
        if self.view is None or self.view.report is None:
            return
        report = self.view.report
        classes = report["classes"]
        row = report["confusion"][true]
        count, total = row[predicted], sum(row)
        share = f" ({percent(count / total)} of the row)" if total else ""
        self.query_one("#matrix-status", FitLine).set_parts(
            Part("true "), Part(classes[true], "bold", shrink=True, least=7), Part(" → predicted "),
            Part(classes[predicted], "bold", shrink=True, least=7), Part(f": {count}"),
            Part(share, optional=True), Part(" · enter images", optional=True))

    # ------------------------------------------------------------------------------------ events

    @on(ConfusionGrid.CellHighlighted, "#matrix")
    def cell_highlighted(self, event: ConfusionGrid.CellHighlighted) -> None:
        self.show_cell_status(event.true, event.predicted)

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

    @on(DataTable.RowSelected, "#per-class")
    def class_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a class: the matrix cursor goes to its row's diagonal."""
        k = self.query_one("#per-class", PerClassTable).class_at(event.cursor_row)
        if k is None:
            return
        grid = self.query_one("#matrix", ConfusionGrid)
        grid.select(k, k)
        grid.focus()

    @on(ThumbnailGrid.Highlighted, "#loss-images")
    def image_highlighted(self, event: ThumbnailGrid.Highlighted) -> None:
        grid = self.query_one("#loss-images", LossGrid)
        if event.index >= len(grid.rows):
            return
        row = grid.rows[event.index]
        loss = row.get("loss")
        self.query_one("#loss-detail", FitLine).set_parts(
            Part(str(row.get("true", "?")), "bold", shrink=True, least=8), Part(" → "),
            Part(str(row.get("predicted", "?")), "bold", shrink=True, least=8),
            Part(f" {percent(row.get('prob_predicted'))}"), Part(f" · true {percent(row.get('prob_true'))}"),
            Part(f" · loss {loss:.2f}" if isinstance(loss, (int, float)) else "", optional=True),
            Part(" · " + os.path.basename(str(row.get("path", ""))), shrink=True, least=12, tail=0.7, optional=True))

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
        report = self.view.report
        losses = report["top_losses"]  # mistakes only (right answers in older reports are left out)
        if losses:
            title = [Part(f"top losses: the {len(losses)} most confident mistakes"),
                     Part(" (true, → predicted, its probability)", optional=True)]
            empty = ""
        elif report.get("accuracy") == 1 or (report["confusion"] and not mistakes_total(report)):
            losses = report["least_confident"]  # right answers, the least sure first: what there is to check
            title = [Part("no mistakes"), Part(f": the {len(losses)} right answers it was least sure of"
                                               if losses else "", optional=True)]
            empty = f"no mistakes: all {report.get('n', '')} images were classified correctly"
        else:
            title = [Part("top losses: none listed")]
            empty = "this older report lists no mistakes among its top losses: e evaluates the run again"
        self.show_images(title, losses, empty)

    def action_sort_classes(self) -> None:
        table = self.query_one("#per-class", PerClassTable)
        if not table.per_class:
            return self.notify("No report to sort yet.", severity="warning")
        table.cycle_sort()
        table.focus()
        self.notify(f"Classes by {table.sort_name}", timeout=2)

    def action_worst_classes(self) -> None:
        table = self.query_one("#per-class", PerClassTable)
        if not table.per_class:
            return self.notify("No report yet: no classes to rank.", severity="warning")
        table.sort_by(WORST)
        table.focus()
        self.query_one("#matrix-status", FitLine).set_parts(
            Part("worst F1: ", "bold"), Part(", ".join(table.worst()), shrink=True, least=12),
            Part(f" · s: {SORTS[(WORST + 1) % len(SORTS)][0]}", optional=True))

    def action_overview(self) -> None:
        if self.view is None or self.view.report is None or not self.view.report["confusion"]:
            self.notify("No confusion matrix to show yet.", severity="warning")
            return
        report, grid = self.view.report, self.query_one("#matrix", ConfusionGrid)

        def chosen(cell: tuple[int, int] | None) -> None:
            if cell is not None:
                grid.select(*cell)
                self.cell_images(*cell)
                grid.focus()

        cursor = (grid.cursor[1], grid.cursor[0])  # the grid's is (predicted, true)
        self.app.push_screen(MatrixOverview(report["classes"], report["confusion"], cursor, self.view.name), chosen)

    def action_recipes(self) -> None:
        lines = recipe_lines(self.view, limit=8) if self.view is not None else []
        if not lines:
            return self.notify("Not an auto run: no recipes were searched.", severity="warning")
        self.notify("\n".join(lines), title="auto's recipes (leaderboard.json)", timeout=20, markup=False)

    def action_plot_top_losses(self) -> None:
        if self.view is None or self.view.report is None:
            self.notify("No report to show: " + ("choose a run (7)" if self.view is None else "not evaluated yet"),
                        severity="warning")
            return
        self.app.push_screen(TopLossesScreen(self.view.report["top_losses"], self.view.run_dir, self.view.name,
                                             self.tlbench.thumbnails))

    def action_normalise(self) -> None:
        grid = self.query_one("#matrix", ConfusionGrid)
        if not grid.n:
            self.notify("No confusion matrix to show yet.", severity="warning")
            return
        grid.toggle_normalised()
        self.notify("Each row in percent of its true class" if grid.normalised else "Counts", timeout=2)

    def action_focus_matrix(self) -> None:
        self.query_one("#matrix", ConfusionGrid).focus()

    def action_focus_images(self) -> None:
        self.query_one("#loss-images", LossGrid).focus()

    def action_attack(self) -> None:
        grid = self.query_one("#loss-images", LossGrid)
        if not grid.items:
            self.notify("No image highlighted: choose a confusion cell or the top losses first.", severity="warning")
            return
        item = grid.items[grid.cursor]
        self.share(picked_image=ImageRef(item.path, item.label, "results"))
        self.app.switch_mode("attack")
        self.notify(f"Attack source: {os.path.basename(item.path)} · a attacks it", timeout=3)
