"""7 Runs: every run (date, dataset, backbone, mode, best val acc, duration, status); enter opens one; u uses
its model; R resumes a stopped one (on the Train screen); x exports it; p predicts with it; H writes its HTML
report to share (of the marked runs: their comparison); o sorts; / filters; space marks runs and c compares the
marked ones (tui.runs.compare_screen).

Statuses are what the files say (tui.run_view.run_status): done, stopped, failed (a run that never
finished an epoch nor saved a checkpoint), and running for the run this workbench is training now.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from engine.core.events import JobFinished
from engine.core.runs import runs_root
from tui.engine_calls import resume
from tui.jobs import RunningJob, finished_value, run_engine_job, value_job
from tui.messages import JobEvent
from tui.run_view import RunView, list_run_views
from tui.runs.compare_screen import CompareScreen
from tui.runs.detail import RunDetailScreen
from tui.runs.listing import SORTS, Listed, RunsTable, matches, run_command, sort_views
from tui.runs.run_jobs import RunJobs
from tui.runs.style import MAX_COMPARED, STATUS_STYLE, WIDE, fmt_acc, run_colour
from tui.screen import WorkbenchScreen, copy_command
from tui.state import display_path
from tui.widgets.fitline import FitLine, Part, shorten_middle
from tui.widgets.inputs import TextField
from tui.widgets.tables import refill
from tui.widgets.text import clock

RELIST_AFTER_S = 5.0  # shown again after this long, the folder is read again (statuses change as jobs run)


class RunsScreen(WorkbenchScreen):
    TAB = "runs"
    TITLE = "Runs"
    HELP = ("Every run in the runs folder with its status. enter opens one; u makes it the model for 4, 5 and 6; "
            "R resumes a stopped one; x exports; p predicts; H writes an HTML report to share (of the marked runs: "
            "their comparison); o sorts; / filters; space marks runs, c compares them.")

    BINDINGS = [
        Binding("enter", "open", "Open", id="runs.open", tooltip="Config, curves and report of the run",
                priority=True),
        Binding("u", "use", "Use", id="runs.use", tooltip="Results, Attack and Dream use this run"),
        Binding("R", "resume", "Resume", id="runs.resume",
                tooltip="Continue a stopped fine-tuning run from its last.pt (the Train screen shows it)"),
        Binding("x", "export", "Export", id="runs.export",
                tooltip="Export the run's model (TorchScript or ONNX), checked against the run"),
        Binding("p", "predict", "Predict", id="runs.predict",
                tooltip="Classify an image or a folder of images with the run's model"),
        Binding("H", "report", "Report", id="runs.report",
                tooltip="One HTML file of the run (or of the marked runs, compared) to share: where it went and "
                "the scp line that fetches it"),
        Binding("space", "mark", "Mark", id="runs.mark", tooltip="Mark or unmark the run for c (compare)"),
        Binding("c", "compare", "Compare", id="runs.compare",
                tooltip="The marked runs' validation curves overlaid and the config keys that differ"),
        Binding("slash", "filter", "Filter", id="runs.filter", show=False,
                tooltip="Type to show only runs whose name, dataset, backbone, mode or status match"),
        Binding("o", "sort", "Sort", id="runs.sort", show=False, tooltip="Sort by date, accuracy or name"),
        Binding("r", "reload", "Reload", id="runs.reload", tooltip="List the runs folder again", show=False),
        Binding("y", "copy_command", "Command", id="runs.copy_command", show=False,
                tooltip="Copy the tlbench command line that runs the highlighted job again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.all_views: list[RunView] = []
        self.views: list[RunView] = []  # as shown: filtered and sorted
        self.sort_key = "date"
        self.resuming: RunningJob | None = None
        self.resuming_dir: Path | None = None
        self.listed_at = 0.0
        self.wide = False
        self.marked: list[Path] = []  # run folders marked for comparison, in the order they were marked

    def compose_body(self) -> ComposeResult:
        yield FitLine("", id="runs-header")
        yield TextField(placeholder="filter: name, dataset, backbone, mode or status", id="runs-filter",
                        classes="hidden", compact=True)
        yield RunsTable(id="runs", cursor_type="row")
        yield Static("", id="runs-empty", classes="hidden", markup=False)
        yield FitLine("", id="runs-status")  # the highlighted run's status, and why
        yield RunJobs(id="runs-job")  # the last export, prediction or report

    def on_mount(self) -> None:
        self.wide = self.app.size.width >= WIDE

    def on_resize(self, event: events.Resize) -> None:
        wide = self.app.size.width >= WIDE
        if wide != self.wide:
            self.wide = wide
            self.call_after_refresh(self.show_runs)

    def state_changed(self) -> None:
        self.action_reload()

    def on_screen_resume(self) -> None:
        """Statuses change while jobs run (a run finishes, fails, starts): read the folder again when shown,
        unless it was read moments ago (switching screens back and forth must stay cheap)."""
        fresh = time.monotonic() - self.listed_at < RELIST_AFTER_S
        if self.all_views and self._seen_version == self.workbench.version and not fresh:
            self.action_reload()

    @property
    def root(self) -> Path:
        return runs_root(self.workbench.runs_dir)

    def action_reload(self) -> None:
        if not self.all_views:
            self.query_one("#runs-header", FitLine).set_parts(
                "Reading ", Part(display_path(self.root), shrink=True, least=12, tail=0.7), " …")
        self.run_list(self.start_job("runs"), self.root)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def run_list(self, job: RunningJob, root: Path) -> None:
        run_engine_job(self, job, value_job(lambda ctx: Listed(list_run_views(root))), self.tlbench.jobs)

    def on_job_runs_finished(self, message: JobEvent[JobFinished]) -> None:
        listed = finished_value(message.event, Listed)
        if listed is None:
            return
        self.all_views = listed.views
        dirs = {v.run_dir for v in self.all_views}
        self.marked = [d for d in self.marked if d in dirs]  # a deleted run is no longer marked
        self.listed_at = time.monotonic()
        self.show_runs()

    def mark_running(self) -> None:
        """The run this workbench is training now is "running", not "stopped"/"failed": the one R resumed,
        else (a job started on the Train screen) the newest run without a summary."""
        for v in self.all_views:
            v.running = False
        if self.resuming is not None and not self.resuming.done.is_set():
            for v in self.all_views:
                v.running = v.run_dir == self.resuming_dir
        elif self.tlbench.jobs.running("train"):
            newest = sort_views(self.all_views, "date")
            unfinished = [v for v in newest if v.summary is None and v.kind == "train"]
            if unfinished and newest and unfinished[0] is newest[0]:
                newest[0].running = True

    def show_runs(self) -> None:
        table = self.query_one("#runs", RunsTable)
        selected = self.current()
        keep = selected.run_dir if selected else None
        self.mark_running()
        query = self.query_one("#runs-filter", TextField).value.strip()
        shown = [v for v in self.all_views if matches(v, query)] if query else list(self.all_views)
        self.views = sort_views(shown, self.sort_key)
        chosen = self.workbench.run_dir
        chosen = Path(chosen).resolve() if chosen else None
        name_w, backbone_w = (24, 24) if self.wide else (10, 15)
        rows = []
        for v in self.views:
            status = v.status
            rows.append((self.mark_cell(v, chosen),
                         v.created if self.wide else v.created[5:], v.dataset_in(name_w),
                         shorten_middle(str(v.config.get("backbone", "-")), backbone_w),
                         v.what, Text(fmt_acc(v.best_val_acc), justify="right"),
                         Text(clock(v.seconds), justify="right"), Text(status, STATUS_STYLE.get(status, ""))))
        refill(table, ("", "date", "dataset", "backbone", "mode", "best acc", "time", "status"), rows,
               [str(v.run_dir) for v in self.views])
        empty = self.query_one("#runs-empty", Static)
        empty.set_class(bool(self.views), "hidden")
        table.set_class(not self.views, "hidden")
        self.show_header(query)
        if not self.all_views:
            empty.update("No runs yet. Train one on the Train screen (3): each run is a folder with its config, "
                         "metrics, checkpoints and its evaluation report.")
        elif not self.views:
            empty.update(f"No run matches {query!r}: / edits the filter (empty shows every run).")
        else:
            rows = [v.run_dir for v in self.views]
            table.move_cursor(row=rows.index(keep) if keep in rows else 0, animate=False)
            if not self.query_one("#runs-filter", TextField).has_focus:
                table.focus()

    def show_header(self, query: str) -> None:
        total, shown = len(self.all_views), len(self.views)
        count = f"{shown} of {total} runs" if query else f"{total} run(s)"
        parts = [Part(count, "bold"), " in ", Part(display_path(self.root), shrink=True, least=10, tail=0.7),
                 f" · by {self.sort_key} (o)"]
        parts.append(Part(f" · filter {query!r} (/)" if query else " · / filters", optional=not query))
        if self.marked:
            parts.append(Part(f" · {len(self.marked)} marked, c compares", "bold"))
        if total:
            parts.append(Part(" · ● in use", optional=True))
        self.query_one("#runs-header", FitLine).set_parts(*parts)

    def mark_cell(self, view: RunView, chosen: Path | None) -> Text:
        """The first column: the run's number among the marked ones, in its comparison colour, then ● when it
        is the run in use."""
        mark = Text(" ")
        if view.run_dir in self.marked:
            i = self.marked.index(view.run_dir)
            mark = Text(str(i + 1), f"bold reverse {run_colour(i)}")
        return mark + Text("●" if chosen and view.run_dir.resolve() == chosen else " ")

    def report_targets(self) -> list[RunView]:
        by_dir = {v.run_dir: v for v in self.all_views}
        marked = [by_dir[d] for d in self.marked if d in by_dir]
        current = self.current()
        return marked or ([current] if current is not None else [])

    def current(self) -> RunView | None:
        table = self.query_one("#runs", RunsTable)
        if not self.views or table.cursor_row >= len(self.views) or table.row_count != len(self.views):
            return None
        return self.views[table.cursor_row]

    @on(DataTable.RowSelected, "#runs")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    @on(DataTable.RowHighlighted, "#runs")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        view = self.current()
        if view is not None:
            self.query_one("#runs-status", FitLine).set_parts(
                Part(view.status, STATUS_STYLE.get(view.status, "")), ": ",
                Part(view.status_detail, shrink=True, least=20))

    # ------------------------------------------------------------------------------------ sort and filter

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.show_runs()

    def action_filter(self) -> None:
        field = self.query_one("#runs-filter", TextField)
        field.remove_class("hidden")
        field.focus()

    @on(Input.Changed, "#runs-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.show_runs()

    def action_leave_field(self) -> None:
        """Escape: out of the filter (an empty one hides) back to the list; the list keeps the keys, so
        arrows pressed right after escape move through the runs instead of being dropped."""
        field = self.query_one("#runs-filter", TextField)
        if not field.value.strip():
            field.add_class("hidden")
        table = self.query_one("#runs", RunsTable)
        if self.views:
            table.focus()
        else:
            self.set_focus(None)

    @on(Input.Submitted, "#runs-filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter: back to the (filtered) list (not to no focus at all, as other fields do)."""
        event.prevent_default()
        self.action_leave_field()

    # ------------------------------------------------------------------------------------ actions

    def action_open(self) -> None:
        if self.query_one("#runs-filter", TextField).has_focus:  # enter (a priority key here) ends the filter
            self.action_leave_field()
            return
        view = self.current()
        if view is None:
            self.notify("No run to open.", severity="warning")
            return
        self.app.push_screen(RunDetailScreen(view), lambda use: self.use_run(view) if use else None)

    def action_mark(self) -> None:
        view = self.current()
        if view is None:
            self.notify("No run to mark.", severity="warning")
            return
        if view.run_dir in self.marked:
            self.marked.remove(view.run_dir)
        elif len(self.marked) >= MAX_COMPARED:
            self.notify(f"{MAX_COMPARED} runs are marked: at most {MAX_COMPARED} compare at once (one colour each). "
                        "space on a marked run unmarks it.", severity="warning")
            return
        else:
            self.marked.append(view.run_dir)
        self.show_runs()

    def action_compare(self) -> None:
        by_dir = {v.run_dir: v for v in self.all_views}
        views = [by_dir[d] for d in self.marked if d in by_dir]
        if len(views) < 2:
            self.notify("Mark two or more runs with space, then c compares them.", severity="warning")
            return
        self.app.push_screen(CompareScreen(views))

    def action_use(self) -> None:
        view = self.current()
        if view is None:
            self.notify("No run to use.", severity="warning")
            return
        self.use_run(view)

    def use_run(self, view: RunView) -> None:
        if view.kind != "train":
            self.notify(f"{view.name} is a {view.kind}, not a training run: it has no model to use.",
                        severity="warning")
            return
        self.share(run_dir=view.run_dir)
        self.show_runs()
        self.notify(f"{view.name} is the model for Results (4), Attack (5) and Dream (6).", title="Model chosen")

    async def action_resume(self) -> None:
        """Continue a stopped run (engine.train.job.resume) as the workbench's training job, on the Train
        screen (its log, curves, progress and summary show it; space pauses and s stops it there)."""
        view = self.current()
        if view is None:
            self.notify("No run to resume.", severity="warning")
            return
        if self.tlbench.jobs.running("train"):
            self.notify("A training job is running: one at a time (3 Train shows it).", severity="warning")
            return
        if view.kind != "train":
            self.notify(f"{view.name} is a {view.kind}, not a training run: y copies the command that runs it "
                        "again.", severity="warning")
            return
        if view.status == "done":
            self.notify(f"{view.name} finished: nothing to resume. Start a new run (3), e.g. with more epochs.",
                        severity="warning")
            return
        run_dir, device = str(view.run_dir), self.workbench.config.get("device")
        epochs = (view.config or {}).get("epochs")

        def resume_job(ctx, planned):
            if isinstance(epochs, int):
                planned(epochs)
            return resume(run_dir, ctx, device=None if device in (None, "auto") else device)

        self.resuming = await self.tlbench.train_on_screen(resume_job, "train resuming", history=view.metrics)
        self.resuming_dir = view.run_dir

    def action_report(self) -> None:
        views = [v for v in self.report_targets() if v.kind == "train"]  # an lr-find or audit has no model
        if not views:
            self.notify("No training run to report.", severity="warning")
            return
        self.query_one(RunJobs).report(views)

    def action_copy_command(self) -> None:
        view = self.current()
        if view is None:
            self.notify("No run highlighted.", severity="warning")
            return
        copy_command(self, run_command(view))

    def action_export(self) -> None:
        view = self.current()
        if view is None or view.kind != "train":
            self.notify("No training run to export: it has no model.", severity="warning")
            return
        self.query_one(RunJobs).export(view)

    def action_predict(self) -> None:
        view = self.current()
        if view is None or view.kind != "train":
            self.notify("No training run to predict with: it has no model.", severity="warning")
            return
        self.query_one(RunJobs).predict(view, self.workbench.config.get("device") or "auto")
