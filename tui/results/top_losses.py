"""`L` on the Results screen: the top losses over the whole screen, as fastai's plot_top_losses draws them.

Each picture is captioned "true" and "→ predicted p%" and shows the Grad-CAM heatmap of the predicted class
over it: the heatmaps are computed one by one on a thread (the run's model) and replace the plain pictures as
they come; `h` shows the plain pictures again, `z` zooms the highlighted one.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.binding import Binding

from tui.heatmap import heatmap_overlay
from tui.results.losses import LossGrid
from tui.widgets.fitline import Part
from tui.widgets.gallery import GRID_KEYS, GalleryScreen
from tui.widgets.thumbnails import Key, MemoryImage, ThumbnailCache

CELL_WIDTH = 18  # 3 across at 80x24, 6 at 120x35: the heatmap's blobs must be visible


class HeatmapLossGrid(LossGrid, inherit_bindings=False):
    """A LossGrid that draws the Grad-CAM overlay of a picture in its place once there is one."""

    BINDINGS = GRID_KEYS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.overlays: dict[str, MemoryImage] = {}
        self.show_overlays = True

    def key(self, index: int) -> Key:
        key = super().key(index)
        overlay = self.overlays.get(self.items[index].path) if self.show_overlays else None
        return key if overlay is None else (overlay, *key[1:])

    def add_overlay(self, path: str, image: MemoryImage) -> None:
        self.overlays[path] = image
        self._request_visible()
        self.refresh()


class TopLossesScreen(GalleryScreen):
    BINDINGS = [Binding("h", "toggle_heatmaps", "Heatmap", id="top_losses.heatmap",
                        tooltip="The Grad-CAM heatmaps of the predicted class, or the plain pictures")]

    def __init__(self, rows: list[dict], run_dir: Path | None, run_name: str, cache: ThumbnailCache) -> None:
        super().__init__("plot_top_losses", HeatmapLossGrid(cache, cell_width=CELL_WIDTH, id="top-losses-grid"))
        self.rows, self.run_dir, self.run_name = rows, run_dir, run_name
        self.heat_done = 0
        self.heat_error = ""

    @property
    def losses(self) -> HeatmapLossGrid:
        assert isinstance(self.grid, HeatmapLossGrid)
        return self.grid

    def fill(self) -> None:
        self.losses.set_losses(self.rows, "no mistakes to show")
        self.say()
        if self.rows:
            self.compute_heatmaps([r["path"] for r in self.rows])

    def say(self) -> None:
        n = len(self.rows)
        if not self.losses.show_overlays:
            heat = "plain pictures (h: heatmaps)"
        elif self.heat_error:
            heat = f"no heatmaps: {self.heat_error}"
        elif self.heat_done < n:
            heat = f"Grad-CAM {self.heat_done}/{n} …"
        else:
            heat = "Grad-CAM of the predicted class"
        self.set_title("Top losses of ", Part(self.run_name, shrink=True, least=12),
                       f": {n} mistake{'' if n == 1 else 's'} · {heat}", Part(" · true, → predicted p%", optional=True))

    @work(thread=True, exclusive=True, group="top-losses-heatmaps", exit_on_error=False)
    def compute_heatmaps(self, paths: list[str]) -> None:
        for path in paths:
            try:
                image, _caption = heatmap_overlay(path, self.run_dir)
            except Exception as err:  # noqa: BLE001 - said in the title; the plain pictures stay
                self.app.call_from_thread(self.heatmaps_failed, str(err) or type(err).__name__)
                return
            self.app.call_from_thread(self.heatmap_ready, path, image)

    def heatmap_ready(self, path: str, image: MemoryImage) -> None:
        self.heat_done += 1
        self.losses.add_overlay(path, image)
        self.say()

    def heatmaps_failed(self, why: str) -> None:
        self.heat_error = why
        self.say()

    def action_toggle_heatmaps(self) -> None:
        self.losses.show_overlays = not self.losses.show_overlays
        self.losses._request_visible()
        self.losses.refresh()
        self.say()

