"""A fastai-like grid of pictures over the whole screen: a title, the grid, the highlighted picture's caption.

The Data screen's `b` shows a batch of the training data with its labels (show_batch); the Results screen's
`L` shows the top losses, "true → predicted p%", with their Grad-CAM heatmaps (plot_top_losses). Enter
previews the highlighted picture, z zooms it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen

from tui.widgets.fitline import FitLine, Part
from tui.widgets.grid import ThumbnailGrid
from tui.widgets.keybar import KeyBar
from tui.widgets.preview import PreviewScreen

# The grid's keys less Enter and z, which the screen binds: the key bar then says the same before and after
# the grid takes the focus (a focused widget's key hides the screen's).
GRID_KEYS = [b for b in ThumbnailGrid.BINDINGS if isinstance(b, Binding) and b.key not in ("enter", "z")]


class GalleryGrid(ThumbnailGrid, inherit_bindings=False):
    BINDINGS = GRID_KEYS


class GalleryScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    GalleryScreen { background: $background; }
    #gallery-title { height: 1; padding: 0 1; text-style: bold; }
    #gallery-detail { height: 1; padding: 0 1; color: $text-muted; }
    GalleryScreen ThumbnailGrid { height: 1fr; }
    """

    BINDINGS = [Binding("escape", "close", "Close", id="gallery.close"),
                Binding("enter", "preview", "Preview", id="gallery.preview"),
                Binding("z", "zoom", "Zoom", id="gallery.zoom")]
    AUTO_FOCUS = "ThumbnailGrid"

    def __init__(self, title: str, grid: ThumbnailGrid) -> None:
        super().__init__()
        self.title_text = title
        self.grid = grid

    def compose(self) -> ComposeResult:
        with Vertical(id="gallery-box"):
            yield FitLine(Part(self.title_text, shrink=True, least=20), id="gallery-title")
            yield self.grid
            yield FitLine("", id="gallery-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.fill()

    def fill(self) -> None:
        """Give the grid its pictures (subclasses)."""

    def set_title(self, *parts: Part | str) -> None:
        """The title line: parts as a FitLine takes them (a run name shrinks, a hint is optional)."""
        line = self.query_one("#gallery-title", FitLine)
        line.set_parts(*parts)
        self.title_text = line.plain

    def on_thumbnail_grid_highlighted(self, message: ThumbnailGrid.Highlighted) -> None:
        self.query_one("#gallery-detail", FitLine).set_parts(Part(message.thumb.caption, shrink=True, least=12))

    def on_thumbnail_grid_opened(self, message: ThumbnailGrid.Opened) -> None:
        """Enter: the preview (file, size, label, `h` heatmap, `z` zoom), the cursor following it back."""
        message.stop()

        def follow(index: int | None) -> None:
            if index is not None:
                self.grid.cursor = index

        self.app.push_screen(PreviewScreen(self.grid.items, message.index, self.grid.cache), follow)

    def action_preview(self) -> None:
        self.grid.action_open()

    def action_zoom(self) -> None:
        self.grid.action_zoom()

    def action_close(self) -> None:
        self.dismiss(None)
