"""The Data screen's thumbnails of one class, with a status line: every image, the train or the val split's, or the
ones the current run got wrong (v cycles); enter previews one (tui.widgets.preview)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical

from engine.data.layouts import DatasetInfo
from tui.base_app import workbench_of
from tui.state import ImageRef
from tui.widgets.fitline import FitLine, Part
from tui.widgets.grid import Thumb, ThumbnailGrid
from tui.widgets.preview import PreviewScreen

VIEWS = ("all", "train", "val", "misclassified")


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


class ClassImages(Vertical):
    """The grid #thumbs and the line #thumb-status under it; `show(label)` shows a class in the current view."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info: DatasetInfo | None = None
        self.thumbs: dict[int, list[Thumb]] = {}
        self.sides: dict[str, str] = {}  # each file's side of the split
        self.view = "all"
        self.shown_label: int | None = None
        self._mistakes: tuple[object, set[str], str] | None = None  # (run_dir, paths, run name)

    def compose(self) -> ComposeResult:
        yield ThumbnailGrid(workbench_of(self).thumbnails, id="thumbs")
        yield FitLine("", id="thumb-status")

    @property
    def grid(self) -> ThumbnailGrid:
        return self.query_one("#thumbs", ThumbnailGrid)

    def show_dataset(self, info: DatasetInfo) -> None:
        self.info = info
        self.thumbs = {i: [] for i in range(len(info.classes))}
        for s in info.samples:
            self.thumbs[s.label].append(Thumb(s.path, os.path.basename(s.path), info.classes[s.label]))

    def show(self, label: int) -> None:
        if self.info is None or label not in self.thumbs:
            return
        self.shown_label = label
        items = self.thumbs[label]
        empty = "no usable images in this class"
        if self.view in ("train", "val"):
            items = [t for t in items if self.sides.get(t.path) == self.view]
            empty = f"none of this class's images are in the {self.view} split"
        elif self.view == "misclassified":
            wrong, run = self.mistakes()
            items = [t for t in items if os.path.realpath(t.path) in wrong]
            empty = f"the report of {run} lists no mistakes in this class"
        self.grid.set_items(items, empty_text=empty)
        if not items:
            total = len(self.thumbs[label])
            self.query_one("#thumb-status", FitLine).update(
                f"{self.info.classes[label]} · 0 of {total} shown ({self.view}) · v changes the view")

    def mistakes(self) -> tuple[set[str], str]:
        """The current run's wrong predictions, read once per run (report.json is small: ≤5000 rows)."""
        run_dir = workbench_of(self).state.run_dir
        if self._mistakes is None or self._mistakes[0] != run_dir:
            self._mistakes = (run_dir, *mistakes_of(run_dir))
        return self._mistakes[1], self._mistakes[2]

    def next_view(self) -> None:
        """v: all thumbnails → the train split → the val split → the current run's mistakes → all."""
        views = list(VIEWS)
        if workbench_of(self).state.run_dir is None:
            views.remove("misclassified")
        self.view = views[(views.index(self.view) + 1) % len(views)] if self.view in views else "all"
        if self.shown_label is not None:
            self.show(self.shown_label)

    def run_changed(self) -> None:
        """Another run became current: its mistakes are another set (and with no run there are none)."""
        if self.view == "misclassified" and self.shown_label is not None:
            if workbench_of(self).state.run_dir is None:
                self.view = "all"
            self.show(self.shown_label)

    @on(ThumbnailGrid.Highlighted, "#thumbs")
    def thumb_highlighted(self, event: ThumbnailGrid.Highlighted) -> None:
        side = self.sides.get(event.thumb.path)
        view = f" ({self.view})" if self.view != "all" else ""
        # in a third of 80 columns: the count and the side stay, the file name shrinks from its middle (its end
        # kept), the hint goes first (issue 24: "1/10 ·" was all that showed)
        self.query_one("#thumb-status", FitLine).set_parts(
            f"{event.index + 1}/{len(event.grid.items)}", Part(view, optional=True),
            Part(event.thumb.caption, shrink=True, least=10, tail=0.6, lead=" · "),
            f" · {side}" if side else "", Part(" · enter preview", optional=True))
        # not a change the other screens reload for: p on Attack and the predict dialog read it when used
        workbench_of(self).state.picked_image = ImageRef(event.thumb.path, event.thumb.label, "data")

    @on(ThumbnailGrid.Opened, "#thumbs")
    def thumb_opened(self, event: ThumbnailGrid.Opened) -> None:
        grid = event.grid

        def follow(index: int | None) -> None:
            if index is not None:
                grid.cursor = index

        self.app.push_screen(PreviewScreen(grid.items, event.index, workbench_of(self).thumbnails, self.sides), follow)
