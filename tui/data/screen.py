"""1 Data: the classes with counts and a bar, the selected class's thumbnails, unusable files, the split."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Static

from engine.core.events import Event, JobFailed, JobFinished, ProgressAdvanced
from engine.data.layouts import DatasetInfo
from engine.data.scan import scan_dataset
from tui.data.dataset_actions import DatasetActions
from tui.data.grid import Thumb, ThumbnailGrid
from tui.data.preview import PreviewScreen
from tui.data.split import split_counts, split_line, split_settings
from tui.errors import describe_error
from tui.jobs import RunningJob, run_engine_job
from tui.state import ImageRef, display_path
from tui.widgets.inputs import ChoiceSuggester, TextField
from tui.widgets.text import middle_truncate

BAR_WIDTH = 8
# Cells the class list needs besides the names: images, train, val (+ the bar when wide), each column padded
# by one cell on both sides, and the scrollbar.
COUNT_COLUMNS_W = 8 + 5 + 4 + 3 * 2
BAR_COLUMN_W = BAR_WIDTH + 2
NAME_MIN_W, SCROLLBAR_W = 10, 1
SORTS = ("name", "count")
VIEWS = ("all", "train", "val", "misclassified")
BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(value: int, top: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a cell."""
    eighths = round(width * 8 * value / top) if top else 0
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def mistakes_of(run_dir: Path | None) -> tuple[set[str], str]:
    """The image paths the run's report lists as wrong predictions (real paths), and what it is called."""
    if run_dir is None:
        return set(), "no run chosen"
    try:
        report = json.loads((Path(run_dir) / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set(), f"{Path(run_dir).name} has no readable report.json (e on Results writes it)"
    rows = report.get("mistakes")
    if rows is None:  # an older report: only its top losses, and only the wrong ones count
        rows = [r for r in report.get("top_losses", []) if r.get("true") != r.get("predicted")]
    return {os.path.realpath(r["path"]) for r in rows if isinstance(r, dict) and r.get("path")}, Path(run_dir).name


class DataScreen(DatasetActions):
    TAB = "data"
    TITLE = "Data"
    HELP = "Browse the dataset: classes, thumbnails, previews, unusable files and the train/validation split."

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
        Binding("k", "group_duplicates", "Keep dups", id="data.group", show=False,
                tooltip="Keep each duplicate group of the last audit on one side of the split, or not"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: DatasetInfo | None = None
        self.split: dict = {}
        self.thumbs: dict[int, list[Thumb]] = {}
        self.scan_job: RunningJob | None = None
        self.scan_path: Path | None = None  # the folder being scanned (it becomes the dataset once it opens)
        self._split_key: tuple | None = None
        self.sort = "name"
        self.view = "all"
        self.name_width = 0
        self.order: list[int] = []  # class labels in the order the list shows them
        self._mistakes: tuple[object, set[str], str] | None = None  # (run_dir, paths, run name)

    def compose_body(self) -> ComposeResult:
        yield Static("", id="data-summary", markup=False)
        with Horizontal(id="data-body"):
            with Vertical(id="class-box"):
                yield TextField(placeholder="class name", id="class-jump", classes="hidden", compact=True)
                yield DataTable(id="classes", cursor_type="row", zebra_stripes=False)
            with Vertical(id="data-images"):
                yield ThumbnailGrid(self.tlbench.thumbnails, id="thumbs")
                yield Static("", id="thumb-status", markup=False)
        with Vertical(id="data-unusable", classes="hidden"):
            yield Static("", id="unusable-title", markup=False)
            yield DataTable(id="unusable", cursor_type="row")
        yield Static("", id="data-empty", classes="hidden", markup=False)

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
        def scan(ctx):
            info = scan_dataset(path, ctx=ctx)
            return {"info": info, "split": split_counts(info, *split)}

        run_engine_job(self, job, scan, self.tlbench.jobs)

    @work(thread=True, exclusive=True, group="split", exit_on_error=False)
    def run_split(self, job: RunningJob, info: DatasetInfo, split: tuple) -> None:
        run_engine_job(self, job, lambda ctx: {"split": split_counts(info, *split)}, self.tlbench.jobs)

    def job_event(self, job: str, event: Event) -> None:
        summary = self.query_one("#data-summary", Static)
        if isinstance(event, ProgressAdvanced) and event.total:
            verb = {"scan": "Scanning", "fetch": "Fetching"}.get(job, job)
            rate = f" · {event.rate / 1e6:.1f} MB/s" if event.rate and event.unit == "bytes" else ""
            summary.update(f"{verb} {display_path(self.scan_path) if job == 'scan' else ''} … "
                           f"{event.phase} {event.done:.0f}/{event.total:.0f} {event.unit}{rate}")
            if job in ("scan", "fetch"):
                self.tlbench.set_job_status(job, f"{job} {100 * event.done / event.total:.0f}%")
        elif isinstance(event, JobFinished):
            if job == "scan":
                self.tlbench.set_job_status("scan", "")
                if event.reason == "stopped":
                    if self.info is not None:
                        self.show_summary()
                    else:
                        summary.update("Scan stopped.")
                else:
                    self.open_scanned(event.result["info"], event.result["split"])
            elif job == "split" and "split" in event.result and self.info is not None:
                self.show_split(event.result["split"])
            elif job == "audit":
                self.show_summary()
                self.refresh_split()  # a new audit: new duplicate groups to keep on one side
                if event.reason == "completed":
                    self.open_audit(event.result)
            elif job == "fetch" and event.reason == "stopped":
                self.tlbench.set_job_status("fetch", "")
                self.say("Fetching stopped (a partial download is resumed next time).")
            elif job == "fetch" and event.result.get("fetched"):
                self.tlbench.set_job_status("fetch", "")
                self.notify(f"Fetched into {display_path(event.result['fetched'])}", title="Dataset ready")
                self.open_dataset(Path(event.result["fetched"]))
        elif isinstance(event, JobFailed):
            if job == "scan":
                self.tlbench.set_job_status("scan", "")
                failed = f"Could not open {display_path(self.scan_path)}: {event.title.lower()}"
                if self.info is not None and self.scan_path != Path(self.info.root):
                    # The dataset that was open stays open; the summary says what went wrong (the modal too,
                    # with the fix): the cause first, so 80 columns show it.
                    cause = describe_error(event.error, event.title)[1]
                    self.show_summary(f"✗ Still showing {self.info.name}: {cause}")
                else:
                    self.info = None
                    self.workbench.info = None
                    self.show_empty(failed + ".")
            elif job == "audit" and self.info is not None:
                self.show_summary()  # the error modal says why
            elif job == "fetch":
                self.tlbench.set_job_status("fetch", "")
                self.say(f"✗ Fetching failed: {event.title.lower()} (the error says why).")

    def state_changed(self) -> None:
        """Settings changed on the Model screen (the split depends on val_fraction and seed), or the run."""
        if self.view == "misclassified" and getattr(self, "shown_label", None) is not None:
            if self.workbench.run_dir is None:
                self.view = "all"
            self.show_class(self.shown_label)
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
        if self.scan_path is not None:
            self.workbench.dataset = self.scan_path
        self.show_dataset(info, split)

    def show_dataset(self, info: DatasetInfo, split: dict) -> None:
        self.info = info
        self.workbench.info = info
        self.workbench.changed()
        self._seen_version = self.workbench.version
        self._split_key = self._split_settings()
        self.sub_title = info.name
        self.query_one("#data-empty", Static).add_class("hidden")
        self.query_one("#data-body").remove_class("hidden")
        self.thumbs = {i: [] for i in range(len(info.classes))}
        for s in info.samples:
            self.thumbs[s.label].append(Thumb(s.path, os.path.basename(s.path), info.classes[s.label]))
        self.query_one("#class-jump", TextField).suggester = ChoiceSuggester(info.classes)
        self.order = []
        self.show_split(split)
        self.show_unusable(info)
        table = self.query_one("#classes", DataTable)
        if info.classes:
            table.move_cursor(row=0)
            self.show_class(self.order[0])
        table.focus()

    def on_resize(self, event: events.Resize) -> None:
        if self.info is not None and self.fit_class_list():
            self.fill_classes()

    def fit_class_list(self) -> bool:
        """Size the class list so its counts always show: names give way (middle-truncated), up to about
        half the screen; the bar column only when there is room. True when the name width changed."""
        if self.info is None:
            return False
        width = self.size.width or 80
        longest = max((len(c) for c in self.info.classes), default=5)
        bar = width >= 100
        others = COUNT_COLUMNS_W + (BAR_COLUMN_W if bar else 0) + 2 + SCROLLBAR_W  # +2: the name's padding
        room = max(NAME_MIN_W + others, int(width * 0.55))
        name_w = max(NAME_MIN_W, min(max(longest, 5), room - others))
        box = self.query_one("#class-box")
        box.styles.width = name_w + others
        changed = (name_w, bar) != (self.name_width, getattr(self, "_bar", None))
        self.name_width, self._bar = name_w, bar
        return changed

    def show_split(self, split: dict) -> None:
        info = self.info
        assert info is not None
        self.split = split
        self.fit_class_list()
        self.fill_classes()
        self.show_summary()

    def sorted_labels(self) -> list[int]:
        info = self.info
        assert info is not None
        labels = list(range(len(info.classes)))
        if self.sort == "count":
            counts = info.counts()
            return sorted(labels, key=lambda i: (-counts[i], info.classes[i].casefold()))
        return sorted(labels, key=lambda i: (info.classes[i].casefold(), info.classes[i]))

    def fill_classes(self) -> None:
        """(Re)build the class rows: the order, the truncation and the split counts all live here."""
        info, split = self.info, self.split
        assert info is not None
        counts = info.counts()
        top = max(counts, default=0)
        table = self.query_one("#classes", DataTable)
        current = self.order[table.cursor_row] if self.order and table.cursor_row < len(self.order) else None
        table.clear(columns=True)
        arrow = {"name": "class ↓", "count": "images ↓"}
        table.add_column(arrow["name"] if self.sort == "name" else "class", key="class", width=self.name_width)
        table.add_column(arrow["count"] if self.sort == "count" else "images", key="images", width=8)
        if self._bar:
            table.add_column("", key="bar")
        table.add_column("train", key="train", width=5)
        table.add_column("val", key="val", width=4)
        self.order = self.sorted_labels()
        for i in self.order:
            name, count = info.classes[i], counts[i]
            tr = str(split["train"][i]) if "train" in split else "-"
            va = str(split["val"][i]) if "val" in split else "-"
            cells = [middle_truncate(name, self.name_width), Text(str(count), justify="right")]
            if self._bar:
                cells.append(Text(bar(count, top), style="cyan"))
            cells += [Text(tr, justify="right"), Text(va, justify="right")]
            table.add_row(*cells, key=str(i))
        if self.order:
            row = self.order.index(current) if current in self.order else 0
            table.move_cursor(row=row)

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

    def show_class(self, label: int) -> None:
        if self.info is None or label not in self.thumbs:
            return
        self.shown_label = label
        items = self.thumbs[label]
        empty = "no usable images in this class"
        if self.view in ("train", "val"):
            sides = self.split.get("sides", {})
            items = [t for t in items if sides.get(t.path) == self.view]
            empty = f"none of this class's images are in the {self.view} split"
        elif self.view == "misclassified":
            wrong, run = self.mistakes()
            items = [t for t in items if os.path.realpath(t.path) in wrong]
            empty = f"the report of {run} lists no mistakes in this class"
        self.query_one("#thumbs", ThumbnailGrid).set_items(items, empty_text=empty)
        if not items:
            total = len(self.thumbs[label])
            self.query_one("#thumb-status", Static).update(
                f"{self.info.classes[label]} · 0 of {total} shown ({self.view}) · v changes the view")

    def mistakes(self) -> tuple[set[str], str]:
        """The current run's wrong predictions, read once per run (report.json is small: ≤5000 rows)."""
        run_dir = self.workbench.run_dir
        if self._mistakes is None or self._mistakes[0] != run_dir:
            self._mistakes = (run_dir, *mistakes_of(run_dir))
        return self._mistakes[1], self._mistakes[2]

    @on(DataTable.RowHighlighted, "#classes")
    def class_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.show_class(int(event.row_key.value))

    @on(DataTable.RowSelected, "#classes")
    def class_selected(self, event: DataTable.RowSelected) -> None:
        self.action_focus_grid()

    @on(ThumbnailGrid.Highlighted, "#thumbs")
    def thumb_highlighted(self, event: ThumbnailGrid.Highlighted) -> None:
        grid = event.grid
        side = self.split.get("sides", {}).get(event.thumb.path)
        view = f" ({self.view})" if self.view != "all" else ""
        self.query_one("#thumb-status", Static).update(
            f"{event.index + 1}/{len(grid.items)}{view} · {event.thumb.caption}"
            + (f" · {side}" if side else "") + " · enter preview")
        self.workbench.picked_image = ImageRef(event.thumb.path, event.thumb.label, "data")

    @on(ThumbnailGrid.Opened, "#thumbs")
    def thumb_opened(self, event: ThumbnailGrid.Opened) -> None:
        grid = event.grid

        def follow(index: int | None) -> None:
            if index is not None:
                grid.cursor = index

        self.app.push_screen(PreviewScreen(grid.items, event.index, self.tlbench.thumbnails,
                                           self.split.get("sides")), follow)

    # --------------------------------------------------------------------------------------- actions

    def action_focus_grid(self) -> None:
        self.query_one("#thumbs", ThumbnailGrid).focus()

    def action_focus_classes(self) -> None:
        self.query_one("#classes", DataTable).focus()

    def action_jump(self) -> None:
        """/: a one-line field over the class list; the cursor follows what is typed."""
        if self.info is None:
            return
        field = self.query_one("#class-jump", TextField)
        field.value = ""
        field.remove_class("hidden")
        field.focus()

    @on(Input.Changed, "#class-jump")
    def jump_typed(self, event: Input.Changed) -> None:
        event.stop()
        info = self.info
        text = event.value.strip().casefold()
        if info is None or not text:
            return
        names = [info.classes[i].casefold() for i in self.order]
        row = next((r for r, n in enumerate(names) if n.startswith(text)), None)
        if row is None:
            row = next((r for r, n in enumerate(names) if text in n), None)
        if row is not None:
            self.query_one("#classes", DataTable).move_cursor(row=row)

    @on(Input.Submitted, "#class-jump")
    def jump_done(self, event: Input.Submitted) -> None:
        self.jump_typed(Input.Changed(event.input, event.value))
        self.close_jump()

    def close_jump(self) -> None:
        self.query_one("#class-jump", TextField).add_class("hidden")
        self.query_one("#classes", DataTable).focus()

    def action_leave_field(self) -> None:
        """Esc: leaves the jump field (back to the list), closes the unusable-files view, or leaves a field."""
        if self.focused is self.query_one("#class-jump"):
            self.close_jump()
        elif not self.query_one("#data-unusable").has_class("hidden"):
            self.action_toggle_unusable()
        else:
            super().action_leave_field()

    def action_sort(self) -> None:
        if self.info is None:
            return
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.fill_classes()  # the sorted column's header carries the arrow

    def action_view(self) -> None:
        """v: all thumbnails → the train split → the val split → the current run's mistakes → all."""
        if self.info is None:
            return
        views = list(VIEWS)
        if self.workbench.run_dir is None:
            views.remove("misclassified")
        self.view = views[(views.index(self.view) + 1) % len(views)] if self.view in views else "all"
        label = getattr(self, "shown_label", None)
        if label is not None:
            self.show_class(label)

    def action_toggle_unusable(self) -> None:
        if self.info is None:
            self.notify("Open a dataset first (o).", severity="warning")
            return
        self.query_one("#data-unusable").toggle_class("hidden")
        self.query_one("#data-body").toggle_class("hidden")
        if not self.query_one("#data-unusable").has_class("hidden"):
            self.query_one("#unusable", DataTable).focus()
        else:
            self.query_one("#classes", DataTable).focus()

    def action_rescan(self) -> None:
        if self.workbench.dataset is None:
            self.action_open_dataset()
            return
        self.start_scan(self.workbench.dataset)
