"""A large preview of one image: the picture, its file name, pixel size, bytes and label; ←/→ step through;
`h` shows the Grad-CAM heatmap of the predicted class over it."""

from __future__ import annotations

import os

from PIL import Image
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.base_app import workbench_of
from tui.heatmap import heatmap_overlay
from tui.state import ImageRef, display_path
from tui.widgets.grid import Thumb
from tui.widgets.image_view import ImageView
from tui.widgets.keybar import KeyBar
from tui.widgets.thumbnails import ThumbnailCache


def describe_file(path: str) -> str:
    """'64x64 px PNG · 1.2 KB' (header read only), or why it cannot be read."""
    try:
        size = os.path.getsize(path)
        with Image.open(path) as img:
            dims = f"{img.width}x{img.height} px {img.format or ''}".rstrip()
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    except Exception as err:  # noqa: BLE001 - any decoder complaint is shown, not raised
        return f"cannot read: {err}"
    kb = size / 1024
    return f"{dims} · {kb:.1f} KB" if kb < 1024 else f"{dims} · {kb / 1024:.1f} MB"


class PreviewScreen(ModalScreen[int]):
    """Dismissed with the index shown last, so the grid can follow."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="preview.close"),
        Binding("enter", "close", "Close", show=False, id="preview.close_enter"),
        Binding("left", "step(-1)", "Previous", id="preview.previous"),
        Binding("right", "step(1)", "Next", id="preview.next"),
        Binding("home", "go(0)", "First", show=False, id="preview.first"),
        Binding("end", "go(-1)", "Last", show=False, id="preview.last"),
        Binding("a", "attack", "Attack it", id="preview.attack"),
        Binding("z", "zoom", "Zoom", id="preview.zoom", tooltip="The picture as large as the screen allows"),
        Binding("h", "heatmap", "Heatmap", id="preview.heatmap",
                tooltip="Grad-CAM over the image: what the current run (else efficientnet_lite0) looks at"),
    ]

    def __init__(self, items: list[Thumb], index: int, cache: ThumbnailCache, splits: dict[str, str] | None = None) -> None:
        super().__init__()
        self.items, self.index, self.cache = items, index, cache
        self.splits = splits or {}
        self.heatmap = False  # `h`: the Grad-CAM overlay instead of the plain image
        self.heat_note = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="preview-box"):
            yield Static(id="preview-title", markup=False)
            yield ImageView(self.cache, id="preview-image")
            yield Static(id="preview-details", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.show_current()

    def show_current(self) -> None:
        item = self.items[self.index]
        self.query_one("#preview-title", Static).update(
            f"{os.path.basename(item.path)}   {self.index + 1}/{len(self.items)}")
        details = [describe_file(item.path)]
        if item.label is not None:
            details.append(f"label {item.label}")
        if item.path in self.splits:
            details.append(f"split {self.splits[item.path]}")
        if item.caption and item.caption != os.path.basename(item.path):
            details.append(item.caption)
        details.append(display_path(item.path))
        if self.heatmap:
            details.insert(0, self.heat_note or "computing the heatmap …")
        self.query_one("#preview-details", Static).update(" · ".join(details))
        if not self.heatmap or not self.heat_note:
            self.query_one("#preview-image", ImageView).show(item.path)
        if self.heatmap and not self.heat_note:
            self.compute_heatmap(item.path)

    def action_heatmap(self) -> None:
        self.heatmap = not self.heatmap
        self.heat_note = ""
        self.show_current()

    @work(thread=True, exclusive=True, group="heatmap", exit_on_error=False)
    def compute_heatmap(self, path: str) -> None:
        try:
            image, caption = heatmap_overlay(path, workbench_of(self).state.run_dir)
        except Exception as err:  # noqa: BLE001 - any failure is a line in the details, the preview stays
            self.app.call_from_thread(self.heatmap_ready, path, None, f"no heatmap: {err}")
            return
        self.app.call_from_thread(self.heatmap_ready, path, image, caption)

    def heatmap_ready(self, path: str, image, caption: str) -> None:
        if not self.heatmap or self.items[self.index].path != path:
            return  # toggled off, or moved on while it was computed
        self.heat_note = caption
        if image is not None:
            self.query_one("#preview-image", ImageView).show(image, caption=caption)
        self.show_current()

    def action_step(self, delta: int) -> None:
        """← and → stop at the ends (no wrapping: the first image's ← must not show the last)."""
        index = max(0, min(len(self.items) - 1, self.index + delta))
        if index == self.index:
            self.app.bell()
            return
        self.index = index
        self.heat_note = ""
        self.show_current()

    def action_go(self, index: int) -> None:
        """Home and End: the first and the last image."""
        self.index = len(self.items) - 1 if index < 0 else max(0, min(len(self.items) - 1, index))
        self.heat_note = ""
        self.show_current()

    def action_zoom(self) -> None:
        self.query_one("#preview-image", ImageView).zoom()

    def action_close(self) -> None:
        self.dismiss(self.index)

    def action_attack(self) -> None:
        """Use this image as the Attack screen's source."""
        item = self.items[self.index]
        app = workbench_of(self)
        app.state.update(picked_image=ImageRef(item.path, item.label, "preview"))
        self.dismiss(self.index)
        app.switch_mode("attack")
