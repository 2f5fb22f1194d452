"""7 Runs: past runs (date, dataset, backbone, mode, best val acc, duration); enter opens one; u uses its model."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine.events import Event, JobFinished
from tui.jobs import RunningJob, run_engine_job
from tui.results.report import RunView, list_run_views
from tui.screen import WorkbenchScreen
from tui.state import display_path
from tui.train.curves import CurvePlot
from tui.train.progress import clock
from tui.widgets.keybar import KeyBar

CONFIG_KEYS_FIRST = ("dataset", "backbone", "mode", "epochs", "batch_size", "lr", "img_size", "seed",
                     "val_fraction", "weights_identity", "device_resolved", "train_images", "val_images")


def fmt_acc(value: float | None) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def config_table(config: dict) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    keys = [k for k in CONFIG_KEYS_FIRST if k in config] + sorted(k for k in config if k not in CONFIG_KEYS_FIRST)
    for k in keys:
        v = config[k]
        if k == "classes" and isinstance(v, list):
            v = f"{len(v)}: " + ", ".join(map(str, v[:12])) + (" …" if len(v) > 12 else "")
        elif k == "dataset":
            v = display_path(v)
        elif isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        table.add_row(k, str(v))
    return table


def report_text(view: RunView) -> Text:
    if view.report is None:
        return Text(view.report_error or "No report.json yet: e on the Results screen (4) evaluates the run.",
                    "dim")
    r = view.report
    text = Text()
    text.append(f"accuracy {r.get('accuracy', '-')}", "bold")
    if r.get("top5") is not None:
        text.append(f" · top-5 {r['top5']}")
    text.append(f" · {r.get('split', 'val')} n {r.get('n', '-')}\n")
    for row in r["per_class"][:40]:
        text.append(f"{str(row.get('class')):<16} acc {row.get('accuracy', '-')}  n {row.get('support', '-')}\n")
    if r["most_confused"]:
        text.append("most confused: " + ", ".join(f"{p['true']}→{p['predicted']} ({p['count']})"
                                                for p in r["most_confused"][:5]))
    return text


class RunDetailScreen(Screen):
    """One run: config, curves, report. u uses its model for Results, Attack and Dream."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="run.back"),
        Binding("u", "use", "Use", id="run.use", tooltip="Results, Attack and Dream use this run"),
    ]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        v = self.view
        yield Static(f"{v.name} · {v.status} · best val acc {fmt_acc(v.best_val_acc)} · {clock(v.seconds)}",
                     id="run-title", markup=False)
        with Horizontal(id="run-body"):
            with VerticalScroll(id="run-config"):
                yield Static(config_table(v.config))
            with Vertical(id="run-right"):
                with Horizontal(id="run-curves"):
                    yield CurvePlot("loss", [("train_loss", "train"), ("val_loss", "val")], id="run-loss")
                    yield CurvePlot("accuracy", [("train_acc", "train"), ("val_acc", "val")], id="run-acc")
                with VerticalScroll(id="run-report"):
                    yield Static(report_text(v))
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#run-loss", CurvePlot).set_history(self.view.metrics)
        self.query_one("#run-acc", CurvePlot).set_history(self.view.metrics)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_use(self) -> None:
        self.app.screen_stack[-2].use_run(self.view)  # type: ignore[attr-defined]
        self.dismiss(None)


class RunsScreen(WorkbenchScreen):
    TAB = "runs"
    TITLE = "Runs"
    HELP = "Every run in the runs folder, newest first. enter opens one; u makes it the model for 4, 5 and 6."

    BINDINGS = [
        Binding("enter", "open", "Open", id="runs.open", tooltip="Config, curves and report of the run",
                priority=True),
        Binding("u", "use", "Use", id="runs.use", tooltip="Results, Attack and Dream use this run"),
        Binding("r", "reload", "Reload", id="runs.reload", tooltip="List the runs folder again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.views: list[RunView] = []

    def compose_body(self) -> ComposeResult:
        yield Static("", id="runs-header", markup=False)
        yield DataTable(id="runs", cursor_type="row")
        yield Static("", id="runs-empty", classes="hidden", markup=False)

    def on_mount(self) -> None:
        self.query_one("#runs", DataTable).add_columns("", "date", "dataset", "backbone", "mode", "best acc",
                                                       "time", "status")

    def state_changed(self) -> None:
        self.action_reload()

    @property
    def root(self) -> Path:
        from engine.runs import runs_root

        return runs_root(self.workbench.runs_dir)

    def action_reload(self) -> None:
        self.query_one("#runs-header", Static).update(f"Reading {display_path(self.root)} …")
        self.run_list(self.start_job("runs"), self.root)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def run_list(self, job: RunningJob, root: Path) -> None:
        run_engine_job(self, job, lambda ctx: {"views": list_run_views(root)}, self.tlbench.jobs)

    def job_event(self, job: str, event: Event) -> None:
        if job == "runs" and isinstance(event, JobFinished) and "views" in event.result:
            self.show_runs(event.result["views"])

    def show_runs(self, views: list[RunView]) -> None:
        self.views = views
        table = self.query_one("#runs", DataTable)
        row = table.cursor_row
        table.clear()
        chosen = self.workbench.run_dir
        for v in views:
            table.add_row("●" if chosen and v.run_dir.resolve() == Path(chosen).resolve() else " ", v.created,
                          v.dataset, str(v.config.get("backbone", "-")), str(v.config.get("mode", "-")),
                          Text(fmt_acc(v.best_val_acc), justify="right"), Text(clock(v.seconds), justify="right"),
                          v.status, key=str(v.run_dir))
        empty = self.query_one("#runs-empty", Static)
        empty.set_class(bool(views), "hidden")
        table.set_class(not views, "hidden")
        self.query_one("#runs-header", Static).update(f"{len(views)} run(s) in {display_path(self.root)}"
                                                      + (" · ● = the model in use" if views else ""))
        if not views:
            empty.update("No runs yet. Train one on the Train screen (3): each run is a folder with its config, "
                         "metrics, checkpoints and its evaluation report.")
        else:
            table.move_cursor(row=min(row, len(views) - 1))
            table.focus()

    def current(self) -> RunView | None:
        table = self.query_one("#runs", DataTable)
        if not self.views or table.cursor_row >= len(self.views):
            return None
        return self.views[table.cursor_row]

    @on(DataTable.RowSelected, "#runs")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        view = self.current()
        if view is None:
            self.notify("No run to open.", severity="warning")
            return
        self.app.push_screen(RunDetailScreen(view))

    def action_use(self) -> None:
        view = self.current()
        if view is None:
            self.notify("No run to use.", severity="warning")
            return
        self.use_run(view)

    def use_run(self, view: RunView) -> None:
        self.workbench.run_dir = view.run_dir
        self.workbench.changed()
        self._seen_version = self.workbench.version
        self.show_runs(self.views)
        self.notify(f"{view.name} is the model for Results (4), Attack (5) and Dream (6).", title="Model chosen")
