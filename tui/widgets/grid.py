"""A virtualised grid of thumbnails: only the visible rows are rendered or even requested.

Line API (ScrollView): `render_line` composes each screen line from the cached strips of the thumbnails on
it; a thumbnail not rendered yet shows a dot and is requested from the ThumbnailCache's pool. Scrolling
replaces the set of wanted thumbnails, so renders for rows scrolled past are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.messages import ThumbnailsReady
from tui.widgets.image_view import ZoomScreen
from tui.widgets.pictures import without_graphics
from tui.widgets.text import middle_truncate
from tui.widgets.thumbnails import Key, ThumbnailCache

GAP = 1  # columns between thumbnails


@dataclass(frozen=True)
class Thumb:
    path: str
    caption: str
    label: str | None = None  # class name, for the preview


class ThumbnailGrid(ScrollView, can_focus=True):
    """Arrow keys move the cursor, enter opens it (the Opened message); the caption under each image names it."""

    BINDINGS = [
        Binding("enter", "open", "Preview", id="grid.open"),
        Binding("up", "move(0, -1)", "Up", show=False, id="grid.up"),
        Binding("down", "move(0, 1)", "Down", show=False, id="grid.down"),
        Binding("left", "move(-1, 0)", "Left", show=False, id="grid.left"),
        Binding("right", "move(1, 0)", "Right", show=False, id="grid.right"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="grid.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="grid.page_down"),
        Binding("home", "jump(0)", "First", show=False, id="grid.first"),
        Binding("end", "jump(-1)", "Last", show=False, id="grid.last"),
        Binding("z", "zoom", "Zoom", show=False, id="grid.zoom",
                tooltip="The highlighted picture as large as the screen allows"),
    ]

    COMPONENT_CLASSES = {"thumbnail-grid--caption", "thumbnail-grid--cursor", "thumbnail-grid--placeholder"}

    DEFAULT_CSS = """
    /* A stable gutter: the scrollbar appearing must not change the cell size (every thumbnail re-rendered). */
    ThumbnailGrid { height: 1fr; scrollbar-gutter: stable; }
    ThumbnailGrid > .thumbnail-grid--caption { color: $text-muted; }
    ThumbnailGrid > .thumbnail-grid--cursor { background: $accent; color: $text; text-style: bold; }
    ThumbnailGrid > .thumbnail-grid--placeholder { color: $text-disabled; }
    """

    # repaint=False: watch_cursor repaints the two captions only, not the pictures
    cursor: reactive[int] = reactive(0, always_update=True, init=False, repaint=False)

    class Highlighted(Message):
        def __init__(self, grid: ThumbnailGrid, index: int, thumb: Thumb) -> None:
            super().__init__()
            self.grid, self.index, self.thumb = grid, index, thumb

        @property
        def control(self) -> ThumbnailGrid:
            return self.grid

    class Opened(Highlighted):
        """Enter on a thumbnail."""

    def __init__(self, cache: ThumbnailCache, cell_width: int = 14, min_columns: int = 3, *,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.cache = cache
        self.target_w = cell_width
        self.min_columns = min_columns
        self.cell_w, self.cell_h = cell_width, cell_width // 2
        self.items: list[Thumb] = []
        self._wanted: frozenset[Key] = frozenset()
        self.empty_text = ""
        self._styles: dict | None = None

    # ------------------------------------------------------------------------------------------- layout

    @property
    def slot_w(self) -> int:
        return self.cell_w + GAP

    @property
    def slot_h(self) -> int:
        return self.cell_h + 1  # the caption line

    @property
    def columns(self) -> int:
        width = self.scrollable_content_region.width or self.size.width
        return max(1, (width + GAP) // self.slot_w)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None

    @property
    def styles_cached(self) -> dict:
        """The widget's styles, computed once per CSS change (rich_style walks the DOM: too slow per line)."""
        if self._styles is None:
            base = self.rich_style
            color = base.bgcolor
            rgb = color.get_truecolor() if color is not None and not color.is_default else None
            self._styles = {
                "base": base,
                "background": None if rgb is None else (rgb.red, rgb.green, rgb.blue),
                "caption": self.get_component_rich_style("thumbnail-grid--caption"),
                "cursor": self.get_component_rich_style("thumbnail-grid--cursor"),
                "placeholder": base + self.get_component_rich_style("thumbnail-grid--placeholder"),
            }
        return self._styles

    @property
    def background(self) -> tuple[int, int, int] | None:
        return self.styles_cached["background"]

    def key(self, index: int) -> Key:
        return (self.items[index].path, self.cell_w, self.cell_h, self.background)

    def set_items(self, items: list[Thumb], empty_text: str = "") -> None:
        self.items = items
        self.empty_text = empty_text
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.set_reactive(ThumbnailGrid.cursor, 0)
        self._update_virtual_size()
        self.refresh()
        # After the layout settles: new items can resize neighbours (an auto-width class list) and so the
        # cells; requesting now would render the first page at a size about to change.
        self.call_after_refresh(self._request_visible)
        if items:
            self.post_message(self.Highlighted(self, 0, items[0]))

    def _update_virtual_size(self) -> None:
        rows = -(-len(self.items) // self.columns)
        self.virtual_size = Size(self.columns * self.slot_w - GAP, rows * self.slot_h)

    def visible_indices(self) -> range:
        top = int(self.scroll_y)
        height = self.scrollable_content_region.height or self.size.height
        first_row = top // self.slot_h
        last_row = (top + max(1, height) - 1) // self.slot_h
        cols = self.columns
        return range(first_row * cols, min(len(self.items), (last_row + 1) * cols))

    def _request_visible(self) -> None:
        if not self.items or not self.is_mounted or self.size.height == 0:
            return
        keys = [self.key(i) for i in self.visible_indices()]
        self._wanted = frozenset(keys)  # swapped whole, so pool threads read it without a lock
        self.cache.request(keys, lambda k: k in self._wanted, self._rendered)

    def _rendered(self) -> None:
        """From a pool thread: ask for one repaint; queued requests of this kind coalesce."""
        self.post_message(ThumbnailsReady())

    def on_thumbnails_ready(self, message: ThumbnailsReady) -> None:
        message.stop()
        self.refresh()

    @property
    def loading(self) -> int:
        """Visible thumbnails not rendered yet."""
        return sum(1 for i in self.visible_indices() if self.cache.get(self.key(i)) is None)

    def fit_cells(self) -> None:
        """About `target_w` cells wide, at least `min_columns` across; square pixels (a cell is 1x2 px)."""
        width = self.scrollable_content_region.width or self.size.width
        columns = max(self.min_columns, (width + GAP) // (self.target_w + GAP))
        self.cell_w = max(6, (width + GAP) // columns - GAP)
        self.cell_h = max(3, self.cell_w // 2)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_cells()
        self._update_virtual_size()
        self._scroll_cursor_visible()
        self._request_visible()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self._request_visible()

    # ------------------------------------------------------------------------------------------- render

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        styles = self.styles_cached
        base = styles["base"]
        if not self.items:
            text = self.empty_text if y == 1 else ""
            return Strip([Segment(("  " + text)[:width])]).adjust_cell_length(width).apply_style(base)
        vy = y + int(self.scroll_y)
        row, line = divmod(vy, self.slot_h)
        if line < self.cell_h:
            return self._image_line(row, line, width)
        cols = self.columns
        caption_style, cursor_style = styles["caption"], styles["cursor"]
        segments: list[Segment] = []
        for col in range(cols):
            index = row * cols + col
            if index >= len(self.items):
                break
            selected = index == self.cursor
            caption = self.items[index].caption
            if len(caption) + 1 > self.cell_w:  # the extension is the least telling part
                caption = os.path.splitext(caption)[0]
            # the middle gives way: "Abyssinian_12" and "Abyssinian_13" must stay apart
            caption = (("▶" if selected else " ") + middle_truncate(caption, self.cell_w - 1)).ljust(self.cell_w)
            if selected:
                style = cursor_style if self.has_focus else caption_style + Style(reverse=True)
            else:
                style = caption_style
            segments.append(Segment(caption, base + style))
            segments.append(Segment(" " * GAP, base))
        return Strip(segments).adjust_cell_length(width, base)

    def _image_line(self, row: int, line: int, width: int) -> Strip:
        """The thumbnails' strips are fully styled already (see ThumbnailCache): joining them is cheap."""
        styles = self.styles_cached
        base = styles["base"]
        cols = self.columns
        blank, gap = Strip.blank(self.cell_w, base), Strip.blank(GAP, base)
        # Kitty or Sixel sequences only for whole pictures on the active screen: a Sixel is drawn from its
        # top-left corner, which a picture scrolled half away has above the grid
        whole = row * self.slot_h >= int(self.scroll_y) and self.screen.is_active
        parts: list[Strip] = []
        for col in range(cols):
            index = row * cols + col
            if index >= len(self.items):
                break
            strips = self.cache.get(self.key(index))
            if strips is not None:
                parts.append(strips[line] if whole else without_graphics(strips[line]))
            elif line == self.cell_h // 2:
                parts.append(Strip([Segment("·".center(self.cell_w), styles["placeholder"])], self.cell_w))
            else:
                parts.append(blank)
            parts.append(gap)
        if parts and sum(p.cell_length for p in parts) > width:
            parts.pop()  # the last gap: never crop a line, Strip.crop counts a Sixel's bytes as cells
        used = sum(p.cell_length for p in parts)
        if used < width:
            parts.append(Strip.blank(width - used, base))
        strip = Strip.join(parts)
        return strip.crop(0, width) if used > width else strip

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------------------------------- cursor

    def watch_cursor(self, old: int, index: int) -> None:
        if not self.items:
            return
        top = self.scroll_y
        self._scroll_cursor_visible()
        if self.scroll_y != top:
            self.refresh()
        else:
            # only the two captions change: the pictures are not drawn again (as Sixel or Kitty graphics each
            # is tens of KB sent to the terminal, on every arrow key over SSH)
            for i in {old, index}:
                if 0 <= i < len(self.items):
                    row = i // self.columns
                    self.refresh_lines(row * self.slot_h + self.cell_h, self.slot_h - self.cell_h)
        self.post_message(self.Highlighted(self, index, self.items[index]))

    def _scroll_cursor_visible(self) -> None:
        if not self.items:
            return
        row, col = divmod(self.cursor, self.columns)
        self.scroll_to_region(Region(col * self.slot_w, row * self.slot_h, self.slot_w, self.slot_h),
                              animate=False, immediate=True)

    def _move_to(self, index: int) -> None:
        if self.items:
            self.cursor = max(0, min(len(self.items) - 1, index))

    def action_move(self, dx: int, dy: int) -> None:
        self._move_to(self.cursor + dx + dy * self.columns)

    def action_page(self, direction: int) -> None:
        height = self.scrollable_content_region.height or self.size.height
        rows = max(1, height // self.slot_h)
        self._move_to(self.cursor + direction * rows * self.columns)

    def action_jump(self, index: int) -> None:
        self._move_to(len(self.items) - 1 if index < 0 else index)

    def action_zoom(self) -> None:
        if self.items:
            index = self.cursor
            self.app.push_screen(ZoomScreen(self.cache, self.key(index)[0], self.items[index].caption))

    def action_open(self) -> None:
        if self.items:
            self.post_message(self.Opened(self, self.cursor, self.items[self.cursor]))

    def on_click(self, event: events.Click) -> None:
        x, y = event.x, event.y + int(self.scroll_y)
        col, row = x // self.slot_w, y // self.slot_h
        if col < self.columns:
            index = row * self.columns + col
            if index < len(self.items):
                if index == self.cursor and event.chain >= 2:
                    self.action_open()
                self.cursor = index
