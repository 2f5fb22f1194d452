"""A large preview of one image: the picture, its file name, pixel size, bytes and label; ←/→ step through."""

from __future__ import annotations

import os

from PIL import Image
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.data.grid import Thumb
from tui.data.thumbnails import ThumbnailCache
from tui.state import display_path
from tui.widgets.image_view import ImageView
from tui.widgets.keybar import KeyBar


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
    ]

    def __init__(self, items: list[Thumb], index: int, cache: ThumbnailCache, splits: dict[str, str] | None = None) -> None:
        super().__init__()
        self.items, self.index, self.cache = items, index, cache
        self.splits = splits or {}

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
        self.query_one("#preview-details", Static).update(" · ".join(details))
        self.query_one("#preview-image", ImageView).show(item.path)

    def action_step(self, delta: int) -> None:
        """← and → stop at the ends (no wrapping: the first image's ← must not show the last)."""
        index = max(0, min(len(self.items) - 1, self.index + delta))
        if index == self.index:
            self.app.bell()
            return
        self.index = index
        self.show_current()

    def action_go(self, index: int) -> None:
        """Home and End: the first and the last image."""
        self.index = len(self.items) - 1 if index < 0 else max(0, min(len(self.items) - 1, index))
        self.show_current()

    def action_close(self) -> None:
        self.dismiss(self.index)

    def action_attack(self) -> None:
        """Use this image as the Attack screen's source."""
        from tui.state import ImageRef

        item = self.items[self.index]
        app = self.app
        app.state.picked_image = ImageRef(item.path, item.label, "preview")  # type: ignore[attr-defined]
        app.state.changed()  # type: ignore[attr-defined]
        self.dismiss(self.index)
        app.switch_mode("attack")
