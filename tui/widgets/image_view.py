"""One image fitted into the widget, as half blocks, rendered off the UI thread through the shared cache."""

from __future__ import annotations

from collections.abc import Hashable

from rich.segment import Segment
from textual import events
from textual.strip import Strip
from textual.widget import Widget

from tui.messages import ThumbnailsReady
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

    def show(self, source: Hashable | None, text: str = "") -> None:
        self.source = source
        self.text = text
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

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        key = self.key
        strips = self.cache.get(key) if key is not None else None
        if strips is not None and y < len(strips):
            return strips[y]
        height = self.content_size.height
        if y == height // 2:
            text = self.text if self.source is None else "·"
            return Strip([Segment(text[:width].center(width))]).adjust_cell_length(width).apply_style(self.rich_style)
        return Strip.blank(width, self.rich_style)
