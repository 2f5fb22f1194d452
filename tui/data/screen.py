"""1 Data: the classes with counts and a bar, the selected class's thumbnails, unusable files, the split."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from engine.datasets import DatasetInfo, scan_dataset, split_dataset
from engine.events import Event, JobFailed, JobFinished, ProgressAdvanced
from engine.paths import data_dir
from tui.data.grid import Thumb, ThumbnailGrid
from tui.data.open_dataset import AskScreen
from tui.data.preview import PreviewScreen
from tui.jobs import RunningJob, run_engine_job
from tui.screen import WorkbenchScreen
from tui.state import ImageRef, display_path

BAR_WIDTH = 8
BLOCKS = " ▏▎▍▌▋▊▉█"
DEFAULT_VAL_FRACTION, DEFAULT_SEED = 0.2, 0  # TrainConfig's defaults (engine.config imports torch)


def bar(value: int, top: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a cell."""
    eighths = round(width * 8 * value / top) if top else 0
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def split_counts(info: DatasetInfo, val_fraction: float, seed: int) -> dict:
    """Per-class train/val counts and each file's side, or the reason there is no split."""
    try:
        train, val = split_dataset(info, val_fraction, seed)
    except Exception as err:  # noqa: BLE001 - shown in the summary line (e.g. one class only)
        return {"error": str(err)}
    n = len(info.classes)
    tr, va = [0] * n, [0] * n
    for s in train:
        tr[s.label] += 1
    for s in val:
        va[s.label] += 1
    sides = {s.path: "train" for s in train} | {s.path: "val" for s in val}
    fixed = any(s.split for s in info.samples)
    return {"train": tr, "val": va, "sides": sides, "fixed": fixed, "val_fraction": val_fraction, "seed": seed}


class DataScreen(WorkbenchScreen):
    TAB = "data"
    TITLE = "Data"
    HELP = "Browse the dataset: classes, thumbnails, previews, unusable files and the train/validation split."

    BINDINGS = [
        Binding("o", "open_dataset", "Open", id="data.open", tooltip="Open another dataset folder"),
        Binding("f", "fetch", "Fetch", id="data.fetch", tooltip="Download a dataset (tlbench fetch)"),
        Binding("u", "toggle_unusable", "Unusable", id="data.unusable", tooltip="Show the unusable files and why"),
        Binding("r", "rescan", "Scan", id="data.rescan", tooltip="Scan the dataset folder again"),
        Binding("g", "focus_grid", "Grid", id="data.images", tooltip="Move to the thumbnail grid"),
        Binding("c", "focus_classes", "List", id="data.classes", tooltip="Move to the class list"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: DatasetInfo | None = None
        self.split: dict = {}
        self.thumbs: dict[int, list[Thumb]] = {}
        self.scan_job: RunningJob | None = None
        self._split_key: tuple | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="data-summary", markup=False)
        with Horizontal(id="data-body"):
            yield DataTable(id="classes", cursor_type="row", zebra_stripes=False)
            with Vertical(id="data-images"):
                yield ThumbnailGrid(self.tlbench.thumbnails, id="thumbs")
                yield Static("", id="thumb-status", markup=False)
        with Vertical(id="data-unusable", classes="hidden"):
            yield Static("", id="unusable-title", markup=False)
            yield DataTable(id="unusable", cursor_type="row")
        yield Static("", id="data-empty", classes="hidden", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#classes", DataTable)
        table.add_columns("class", "images", "", "train", "val")
        unusable = self.query_one("#unusable", DataTable)
        unusable.add_columns("file", "reason")
        if self.workbench.dataset is not None:
            self.start_scan(self.workbench.dataset)
        else:
            self.show_empty("No dataset open.")

    # --------------------------------------------------------------------------------------- scanning

    def start_scan(self, path: Path) -> None:
        if self.scan_job is not None:
            self.scan_job.control.stop()
        self.query_one("#data-summary", Static).update(f"Scanning {display_path(path)} …")
        self.scan_job = self.start_job("scan")
        self.tlbench.set_job_status("scan", "scanning")
        self.run_scan(self.scan_job, path, self._split_settings())

    def _split_settings(self) -> tuple[float, int]:
        cfg = self.workbench.config
        seed = cfg.get("seed")
        return (cfg.get("val_fraction") or DEFAULT_VAL_FRACTION, DEFAULT_SEED if seed is None else seed)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def run_scan(self, job: RunningJob, path: Path, split: tuple[float, int]) -> None:
        def scan(ctx):
            info = scan_dataset(path, ctx=ctx)
            return {"info": info, "split": split_counts(info, *split)}

        run_engine_job(self, job, scan, self.tlbench.jobs)

    @work(thread=True, exclusive=True, group="split", exit_on_error=False)
    def run_split(self, job: RunningJob, info: DatasetInfo, split: tuple[float, int]) -> None:
        run_engine_job(self, job, lambda ctx: {"split": split_counts(info, *split)}, self.tlbench.jobs)

    def job_event(self, job: str, event: Event) -> None:
        summary = self.query_one("#data-summary", Static)
        if isinstance(event, ProgressAdvanced) and event.total:
            verb = {"scan": "Scanning", "fetch": "Fetching"}.get(job, job)
            rate = f" · {event.rate / 1e6:.1f} MB/s" if event.rate and event.unit == "bytes" else ""
            summary.update(f"{verb} {display_path(self.workbench.dataset) if job == 'scan' else ''} … "
                           f"{event.phase} {event.done:.0f}/{event.total:.0f} {event.unit}{rate}")
            if job == "scan":
                self.tlbench.set_job_status("scan", f"scan {100 * event.done / event.total:.0f}%")
        elif isinstance(event, JobFinished):
            if job == "scan":
                self.tlbench.set_job_status("scan", "")
                if event.reason == "stopped":
                    summary.update("Scan stopped.")
                else:
                    self.show_dataset(event.result["info"], event.result["split"])
            elif job == "split" and "split" in event.result and self.info is not None:
                self.show_split(event.result["split"])
            elif job == "fetch" and event.result.get("fetched"):
                self.notify(f"Fetched into {display_path(event.result['fetched'])}", title="Dataset ready")
                self.open_dataset(Path(event.result["fetched"]))
        elif isinstance(event, JobFailed):
            if job == "scan":
                self.tlbench.set_job_status("scan", "")
                self.info = None
                self.workbench.info = None
                self.show_empty(f"Could not open {display_path(self.workbench.dataset)}: {event.title.lower()}.")
            elif job == "fetch":
                summary.update("Fetching failed.")

    def state_changed(self) -> None:
        """Settings changed on the Model screen: the split depends on val_fraction and seed."""
        if self.info is not None and self._split_key != self._split_settings():
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
        self.show_split(split)
        self.show_unusable(info)
        table = self.query_one("#classes", DataTable)
        if info.classes:
            table.move_cursor(row=0)
            self.show_class(0)
        table.focus()

    def show_split(self, split: dict) -> None:
        info = self.info
        assert info is not None
        self.split = split
        counts = info.counts()
        top = max(counts, default=0)
        table = self.query_one("#classes", DataTable)
        row = table.cursor_row
        table.clear()
        for i, (name, count) in enumerate(zip(info.classes, counts)):
            tr = str(split["train"][i]) if "train" in split else "-"
            va = str(split["val"][i]) if "val" in split else "-"
            table.add_row(name, Text(str(count), justify="right"), Text(bar(count, top), style="cyan"),
                          Text(tr, justify="right"), Text(va, justify="right"), key=str(i))
        if info.classes:
            table.move_cursor(row=min(row, len(info.classes) - 1))
        if "error" in split:
            split_text = f"no split: {split['error']}"
        elif split.get("fixed"):
            split_text = f"split {sum(split['train'])} train / {sum(split['val'])} val (from the folders)"
        else:
            split_text = (f"split {sum(split['train'])} train / {sum(split['val'])} val "
                          f"({split['val_fraction']:.0%} val, seed {split['seed']})")
        bad = f" · {len(info.unreadable)} unusable (u)" if info.unreadable else " · 0 unusable"
        self.query_one("#data-summary", Static).update(
            f"{info.name} · {info.layout} · {len(info.samples)} images · {len(info.classes)} classes{bad}\n"
            f"{split_text} · {display_path(info.root)}")

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
        items = self.thumbs[label]
        self.query_one("#thumbs", ThumbnailGrid).set_items(items, empty_text="no usable images in this class")

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
        self.query_one("#thumb-status", Static).update(
            f"{event.thumb.label} · {event.index + 1}/{len(grid.items)} · {event.thumb.caption}"
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

    def action_open_dataset(self) -> None:
        def opened(value: str | None) -> None:
            if value:
                self.open_dataset(Path(os.path.expanduser(value)))

        current = str(self.workbench.dataset) + os.sep if self.workbench.dataset else os.getcwd() + os.sep
        self.app.push_screen(AskScreen("Open a dataset folder", "enter open · tab complete · escape cancel",
                                       current), opened)

    def open_dataset(self, path: Path) -> None:
        self.workbench.dataset = path
        self.workbench.info = None
        self.workbench.changed()
        self.start_scan(path)

    def action_fetch(self) -> None:
        """What `tlbench fetch` does, from a key: ask for a dataset name, download it, open it."""
        from engine.fetch import DATASETS

        names = list(DATASETS)
        described = "; ".join(f"{n}: {src.title}" for n, src in DATASETS.items())

        def chosen(name: str | None) -> None:
            if name:
                self.query_one("#data-summary", Static).update(f"Fetching {name} …")
                self.run_fetch(self.start_job("fetch"), name)

        self.app.push_screen(AskScreen("Fetch a dataset into " + display_path(data_dir()), described, "", names),
                             chosen)

    @work(thread=True, exclusive=True, group="fetch", exit_on_error=False)
    def run_fetch(self, job: RunningJob, name: str) -> None:
        from engine.fetch import fetch_dataset

        def fetch(ctx):
            result = fetch_dataset(name, data_dir(), ctx=ctx)
            return {"fetched": str(result["path"]), "command": result.get("command", "")}

        run_engine_job(self, job, fetch, self.tlbench.jobs)
