"""1 Data: the classes with counts and a bar (tui.data.class_list), the selected class's thumbnails
(tui.data.class_images), unusable files, the split; fetching (tui.data.fetch) and auditing (tui.data.audit) are
widgets with their own jobs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from engine.core.events import JobFailed, JobFinished, ProgressAdvanced
from engine.data.exclude import load_audit
from engine.data.layouts import DatasetInfo
from engine.data.scan import scan_dataset
from tui.data.audit import AuditScreen, DatasetAudit
from tui.data.batch import BatchScreen
from tui.data.class_images import ClassImages
from tui.data.class_list import ClassList
from tui.data.fetch import DatasetFetch
from tui.data.open_dataset import AskScreen
from tui.data.split import split_counts, split_line, split_settings
from tui.errors import describe_error
from tui.jobs import RunningJob, finished_value, run_engine_job, value_job
from tui.messages import JobEvent
from tui.screen import WorkbenchScreen
from tui.state import display_path


@dataclass(frozen=True)
class Scanned:
    """What the scan job found: the dataset and its split under the current settings."""

    info: DatasetInfo
    split: dict


class DataScreen(WorkbenchScreen):
    TAB = "data"
    TITLE = "Data"
    HELP = "Browse the dataset: classes, thumbnails, previews, unusable files and the train/validation split."
    HELP_PARTS = (("audit view (a)", "The last audit's suspects; marks leave files out of training.", AuditScreen),)

    BINDINGS = [
        Binding("o", "open_dataset", "Open", id="data.open", tooltip="Open another dataset folder"),
        Binding("f", "fetch", "Fetch", id="data.fetch", tooltip="Download a dataset (tlbench fetch)"),
        Binding("u", "toggle_unusable", "Unusable", id="data.unusable", tooltip="Show the unusable files and why"),
        Binding("r", "rescan", "Scan", id="data.rescan", tooltip="Scan the dataset folder again"),
        Binding("g", "focus_grid", "Grid", id="data.images", tooltip="Move to the thumbnail grid"),
        Binding("c", "focus_classes", "List", id="data.classes", tooltip="Move to the class list", show=False),
        Binding("slash", "jump", "Jump", id="data.jump", tooltip="Type a class name to jump to it"),
        Binding("s", "sort", "Sort", id="data.sort", tooltip="Sort the classes by name or by image count"),
        Binding("v", "view", "View", id="data.view",
                tooltip="Thumbnails: all, train split, val split, or the current run's mistakes"),
        Binding("a", "audit", "Audit", id="data.audit",
                tooltip="Likely label errors, duplicates and outliers; mark files to leave out of training"),
        Binding("b", "show_batch", "Batch", id="data.batch", show=False,
                tooltip="A batch of the training data with its labels (show_batch)"),
        Binding("k", "group_duplicates", "Keep dups", id="data.group", show=False,
                tooltip="Keep each duplicate group of the last audit on one side of the split, or not"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: DatasetInfo | None = None
        self.split: dict = {}
        self.scan_job: RunningJob | None = None
        self.scan_path: Path | None = None  # the folder being scanned (it becomes the dataset once it opens)
        self._split_key: tuple | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="data-summary", markup=False)
        with Horizontal(id="data-body"):
            yield ClassList(id="class-box")
            yield ClassImages(id="data-images")
        with Vertical(id="data-unusable", classes="hidden"):
            yield Static("", id="unusable-title", markup=False)
            yield DataTable(id="unusable", cursor_type="row")
        yield Static("", id="data-empty", classes="hidden", markup=False)
        yield DatasetFetch()
        yield DatasetAudit()

    @property
    def class_list(self) -> ClassList:
        return self.query_one(ClassList)

    @property
    def class_images(self) -> ClassImages:
        return self.query_one(ClassImages)

    def on_mount(self) -> None:
        unusable = self.query_one("#unusable", DataTable)
        unusable.add_columns("file", "reason")
        if self.workbench.dataset is not None:
            self.start_scan(self.workbench.dataset)
        else:
            self.show_empty("No dataset open.")

    # --------------------------------------------------------------------------------------- scanning

    def start_scan(self, path: Path) -> None:
        """Scan `path`; it replaces the dataset shown only once it opened (a mistyped folder keeps the old)."""
        if self.scan_job is not None:
            self.scan_job.control.stop()
        self.scan_path = path
        self.query_one("#data-summary", Static).update(f"Scanning {display_path(path)} …")
        self.scan_job = self.start_job("scan")
        self.tlbench.set_job_status("scan", "scanning")
        self.run_scan(self.scan_job, path, self._split_settings())

    def _split_settings(self) -> tuple:
        return split_settings(self.workbench.config)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def run_scan(self, job: RunningJob, path: Path, split: tuple) -> None:
        def scan(ctx) -> Scanned:
            info = scan_dataset(path, ctx=ctx)
            return Scanned(info, split_counts(info, *split))

        run_engine_job(self, job, value_job(scan), self.tlbench.jobs)

    @work(thread=True, exclusive=True, group="split", exit_on_error=False)
    def run_split(self, job: RunningJob, info: DatasetInfo, split: tuple) -> None:
        run_engine_job(self, job, value_job(lambda ctx: split_counts(info, *split)), self.tlbench.jobs)

    def on_job_scan_progress_advanced(self, message: JobEvent[ProgressAdvanced]) -> None:
        event = message.event
        if event.total:
            rate = f" · {event.rate / 1e6:.1f} MB/s" if event.rate and event.unit == "bytes" else ""
            self.query_one("#data-summary", Static).update(
                f"Scanning {display_path(self.scan_path)} … {event.phase} {event.done:.0f}/{event.total:.0f} "
                f"{event.unit}{rate}")
            self.tlbench.set_job_status("scan", f"scan {100 * event.done / event.total:.0f}%")

    def on_job_scan_finished(self, message: JobEvent[JobFinished]) -> None:
        self.tlbench.set_job_status("scan", "")
        scanned = finished_value(message.event, Scanned)
        if scanned is not None:
            self.open_scanned(scanned.info, scanned.split)
        elif self.info is not None:
            self.show_summary()
        else:
            self.query_one("#data-summary", Static).update("Scan stopped.")

    def on_job_scan_failed(self, message: JobEvent[JobFailed]) -> None:
        event = message.event
        self.tlbench.set_job_status("scan", "")
        if self.info is not None and self.scan_path != Path(self.info.root):
            # The dataset that was open stays open; the summary says what went wrong (the modal too, with the
            # fix): the cause first, so 80 columns show it.
            cause = describe_error(event.error, event.title)[1]
            self.show_summary(f"✗ Still showing {self.info.name}: {cause}")
        else:
            self.info = None
            self.share(info=None)
            self.show_empty(f"Could not open {display_path(self.scan_path)}: {event.title.lower()}.")

    def on_job_split_finished(self, message: JobEvent[JobFinished]) -> None:
        split = finished_value(message.event, dict)
        if split is not None and self.info is not None:
            self.show_split(split)

    def state_changed(self) -> None:
        """Settings changed on the Model screen (the split depends on val_fraction and seed), or the run."""
        self.class_images.run_changed()
        if self._split_key != self._split_settings():
            self.refresh_split()

    def refresh_split(self) -> None:
        """Compute the split again: the settings, the exclude list or the audit changed."""
        if self.info is not None:
            self._split_key = self._split_settings()
            self.run_split(self.start_job("split"), self.info, self._split_key)

    # --------------------------------------------------------------------------------------- showing

    def show_empty(self, why: str) -> None:
        self.query_one("#data-summary", Static).update(why)
        self.query_one("#data-empty", Static).update(
            f"{why}\n\no  open a folder of images (one sub-folder per class)\n"
            "f fetch one (Oxford-IIIT Pets, Cats vs Dogs, Imagenette)\n\n"
            "tlbench reads class folders, train/ + val/, Oxford-IIIT Pets and Microsoft PetImages layouts.")
        self.query_one("#data-body").add_class("hidden")
        self.query_one("#data-unusable").add_class("hidden")
        self.query_one("#data-empty", Static).remove_class("hidden")

    def open_scanned(self, info: DatasetInfo, split: dict) -> None:
        """A scan succeeded: its folder is now the dataset (the Model and Train screens use it)."""
        self.share(dataset=self.scan_path or self.workbench.dataset, info=info)
        self.show_dataset(info, split)

    def show_dataset(self, info: DatasetInfo, split: dict) -> None:
        self.info = info
        self._split_key = self._split_settings()
        self.sub_title = info.name
        self.query_one("#data-empty", Static).add_class("hidden")
        self.query_one("#data-body").remove_class("hidden")
        self.class_images.show_dataset(info)
        self.class_list.show_dataset(info)
        self.show_split(split)
        self.show_unusable(info)
        first = self.class_list.first()
        if first is not None:
            self.class_images.show(first)
        self.class_list.table.focus()

    def on_resize(self, event: events.Resize) -> None:
        if self.info is not None and self.class_list.fit():
            self.class_list.fill()

    def show_split(self, split: dict) -> None:
        self.split = split
        self.class_images.sides = split.get("sides", {})
        self.class_list.show_split(split)
        self.show_summary()

    def say(self, problem: str) -> None:
        """A job's outcome in the summary: beside the open dataset, or alone when none is open."""
        if self.info is not None:
            self.show_summary(problem)
        else:
            self.query_one("#data-summary", Static).update(problem)

    def show_summary(self, problem: str = "") -> None:
        """Two lines: the dataset and its split; `problem` (a failed open) replaces the second line."""
        info, split = self.info, self.split
        assert info is not None
        split_text = split_line(split)
        bad = f" · {len(info.unreadable)} unusable (u)" if info.unreadable else " · 0 unusable"
        first = f"{info.name} · {info.layout} · {len(info.samples)} images · {len(info.classes)} classes{bad}"
        second = problem or f"{split_text} · {display_path(info.root)}"
        summary = self.query_one("#data-summary", Static)
        summary.set_class(bool(problem), "-problem")
        summary.update(first + "\n" + second)

    def show_unusable(self, info: DatasetInfo) -> None:
        table = self.query_one("#unusable", DataTable)
        table.clear()
        for bad in info.unreadable:
            table.add_row(display_path(bad.path), bad.reason)
        notes = "\n".join(f"• {n}" for n in info.notes)
        title = (f"{len(info.unreadable)} unusable file(s), skipped — nothing on disk was changed."
                 if info.unreadable else "No unusable files.")
        self.query_one("#unusable-title", Static).update(title + ("\n" + notes if notes else ""))

    @on(DataTable.RowHighlighted, "#classes")
    def class_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.class_images.show(int(event.row_key.value))

    @on(DataTable.RowSelected, "#classes")
    def class_selected(self, event: DataTable.RowSelected) -> None:
        self.action_focus_grid()

    # --------------------------------------------------------------------------------------- fetch, audit

    def on_dataset_fetch_progressed(self, message: DatasetFetch.Progressed) -> None:
        self.query_one("#data-summary", Static).update(message.text)

    def on_dataset_fetch_ended(self, message: DatasetFetch.Ended) -> None:
        self.say(message.text)

    def on_dataset_fetch_fetched(self, message: DatasetFetch.Fetched) -> None:
        self.open_dataset(message.path)

    def on_dataset_audit_closed(self, message: DatasetAudit.Closed) -> None:
        self.refresh_split()  # marks made in the view change what the split holds

    def on_dataset_audit_started(self, message: DatasetAudit.Started) -> None:
        self.query_one("#data-summary", Static).update(f"Auditing {message.name} …")

    def on_dataset_audit_ended(self, message: DatasetAudit.Ended) -> None:
        if self.info is not None:
            self.show_summary()  # after a failure the error modal says why
        if not message.failed:
            self.refresh_split()  # a new audit: new duplicate groups to keep on one side

    # --------------------------------------------------------------------------------------- actions

    def action_open_dataset(self) -> None:
        def opened(value: str | None) -> None:
            if value:
                self.open_dataset(Path(os.path.expanduser(value)))

        current = str(self.workbench.dataset) + os.sep if self.workbench.dataset else os.getcwd() + os.sep
        self.app.push_screen(AskScreen("Open a dataset folder", "enter open · tab complete · escape cancel",
                                       current), opened)

    def open_dataset(self, path: Path) -> None:
        """Scan `path`; the dataset open now stays until the new one has opened."""
        self.start_scan(path)

    def action_fetch(self) -> None:
        self.query_one(DatasetFetch).ask()

    def action_audit(self) -> None:
        if self.info is not None:
            self.query_one(DatasetAudit).open(self.info.root, self.info.name, load_audit(self.info.root))

    def action_group_duplicates(self) -> None:
        """k: keep each duplicate group of the last audit on one side of the split (the default), or not."""
        config = dict(self.workbench.config)
        if config.get("group_duplicates", "auto") == "off":
            config.pop("group_duplicates", None)
        else:
            config["group_duplicates"] = "off"
        self.share(config=config)  # the Model screen's form follows when shown
        self.refresh_split()

    def action_focus_grid(self) -> None:
        self.class_images.grid.focus()

    def action_focus_classes(self) -> None:
        self.class_list.table.focus()

    def action_jump(self) -> None:
        if self.info is not None:
            self.class_list.open_jump()

    def action_leave_field(self) -> None:
        """Esc: leaves the jump field (back to the list), closes the unusable-files view, or leaves a field."""
        if self.class_list.jumping:
            self.class_list.close_jump()
        elif not self.query_one("#data-unusable").has_class("hidden"):
            self.action_toggle_unusable()
        else:
            super().action_leave_field()

    def action_sort(self) -> None:
        if self.info is not None:
            self.class_list.next_sort()

    def action_show_batch(self) -> None:
        if self.info is None:
            self.notify("Open a dataset first (o).", severity="warning")
            return
        batch_size = int(self.workbench.config.get("batch_size") or 64)
        seed = int(self.workbench.config.get("seed") or 0)
        self.app.push_screen(BatchScreen(self.info, self.split.get("sides", {}), batch_size,
                                         self.tlbench.thumbnails, seed))

    def action_view(self) -> None:
        if self.info is not None:
            self.class_images.next_view()

    def action_toggle_unusable(self) -> None:
        if self.info is None:
            self.notify("Open a dataset first (o).", severity="warning")
            return
        self.query_one("#data-unusable").toggle_class("hidden")
        self.query_one("#data-body").toggle_class("hidden")
        if not self.query_one("#data-unusable").has_class("hidden"):
            self.query_one("#unusable", DataTable).focus()
        else:
            self.class_list.table.focus()

    def action_rescan(self) -> None:
        if self.workbench.dataset is None:
            self.action_open_dataset()
            return
        self.start_scan(self.workbench.dataset)
