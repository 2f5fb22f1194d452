"""One image fitted into the widget (half blocks, Kitty or Sixel: tui/widgets/pictures.py), rendered off the UI
thread through the shared cache; a click zooms it: ZoomScreen, `z` wherever a picture is selected, shows one
picture as large as the screen allows."""

from __future__ import annotations

from collections.abc import Hashable
from typing import cast

from rich.segment import Segment
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widget import Widget

from tui.messages import ThumbnailsReady
from tui.widgets.fitline import FitLine, Part
from tui.widgets.keybar import KeyBar
from tui.widgets.pictures import without_graphics
from tui.widgets.thumbnails import Key, ThumbnailCache


class ImageView(Widget):
    """Shows `source` (a path or a MemoryImage) at the widget's size; `text` when there is none."""

    DEFAULT_CSS = """
    ImageView { width: 1fr; height: 1fr; color: $text-muted; }
    """

    def __init__(self, cache: ThumbnailCache, text: str = "", *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.cache = cache
        self.source: Hashable | None = None
        self.text = text
        self.caption = ""  # what the zoom says above the picture

    def show(self, source: Hashable | None, text: str = "", caption: str = "") -> None:
        self.source = source
        self.text = text
        self.caption = caption or (source if isinstance(source, str) else getattr(source, "name", ""))
        self._request()
        self.refresh()

    @property
    def key(self) -> Key | None:
        w, h = self.content_size
        if self.source is None or w <= 0 or h <= 0:
            return None
        color = self.rich_style.bgcolor
        rgb = color.get_truecolor() if color is not None and not color.is_default else None
        return (self.source, w, h, None if rgb is None else (rgb.red, rgb.green, rgb.blue))

    @property
    def ready(self) -> bool:
        key = self.key
        return key is None or self.cache.get(key) is not None

    def _request(self) -> None:
        key = self.key
        if key is not None:
            self.cache.request([key], lambda k: k == self.key, self._rendered)

    def _rendered(self) -> None:
        """From a pool thread: ask for one repaint; queued requests of this kind coalesce."""
        self.post_message(ThumbnailsReady())

    def on_resize(self, event: events.Resize) -> None:
        self._request()

    def on_thumbnails_ready(self, message: ThumbnailsReady) -> None:
        message.stop()
        self.refresh()

    def zoom(self) -> None:
        """The picture as large as the screen allows."""
        if self.source is not None and not isinstance(self.screen, ZoomScreen):
            self.app.push_screen(ZoomScreen(self.cache, self.source, self.caption))

    def on_click(self, event: events.Click) -> None:
        self.zoom()

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        key = self.key
        strips = self.cache.get(key) if key is not None else None
        if strips is not None and y < len(strips):
            # under a modal screen a Sixel would be drawn over it: the cells alone
            return strips[y] if self.screen.is_active else without_graphics(strips[y])
        height = self.content_size.height
        if y == height // 2:
            text = self.text if self.source is None else "·"
            return Strip([Segment(text[:width].center(width))]).adjust_cell_length(width).apply_style(self.rich_style)
        return Strip.blank(width, self.rich_style)


class ZoomScreen(ModalScreen[None]):
    """One picture over the whole screen, its caption above it; z, Enter or Escape closes it."""

    DEFAULT_CSS = """
    ZoomScreen { background: $background; }
    #zoom-box { width: 100%; height: 1fr; }
    #zoom-caption { height: 1; padding: 0 1; text-style: bold; }
    #zoom-image { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="zoom.close"),
        Binding("z", "close", "Close", show=False, id="zoom.close_z"),
        Binding("enter", "close", "Close", show=False, id="zoom.close_enter"),
    ]

    def __init__(self, cache: ThumbnailCache, source: Hashable, caption: str = "") -> None:
        super().__init__()
        self.cache, self.source, self.caption = cache, source, caption

    def compose(self) -> ComposeResult:
        with Vertical(id="zoom-box"):
            # a Grad-CAM caption knows its pieces (tui.heatmap.HeatCaption): the class and its probability stay
            # whole at any width, the model's name and the words give way first
            pieces = getattr(self.caption, "parts", None)
            parts = cast("list[Part]", pieces()) if callable(pieces) else [Part(self.caption, shrink=True, least=12)]
            yield FitLine(*parts, id="zoom-caption")
            yield ImageView(self.cache, id="zoom-image")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(ImageView).show(self.source)

    def action_close(self) -> None:
        self.dismiss(None)
