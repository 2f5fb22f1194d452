"""Images as cells (half blocks from rich-pixels, or Kitty or Sixel graphics: tui/widgets/pictures.py), rendered
off the UI thread and kept in a bounded LRU cache.

Each image is pre-resized with LANCZOS to exactly the cells it will fill (two pixels per cell, one above
the other), so rich-pixels never resamples (its own resize is nearest-neighbour) and a 4000 px photo costs
the same to draw as an 8 px digit. The cache is bounded, so browsing 10,000 images keeps memory flat.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich_pixels import Pixels
from textual.strip import Strip

from engine.core.events import ImageRendered
from tui.widgets.pictures import Pictures, fit_pixels, kitty_strips, sixel_strips

# (source, width in cells, height in cells, background RGB or None); the source is a path or a MemoryImage.
# The background fills the margins of an image that does not fill its box, so the strips come out fully
# styled and the widget only has to join them (no per-cell restyling on the UI thread).
Key = tuple[Hashable, int, int, "tuple[int, int, int] | None"]
Loader = Callable[[Hashable, int], Image.Image]  # (source, shorter side wanted in px) -> RGB image


@dataclass(frozen=True, eq=False)
class MemoryImage:
    """An image that exists only in memory (an attack or dream frame); hashed by identity."""

    image: Image.Image
    name: str = ""


def rendered_image(event: ImageRendered) -> MemoryImage | str | None:
    """The picture an ImageRendered event of a job carries: raw HxWx3 bytes, or a file path."""
    if event.pixels and event.width and event.height:
        return MemoryImage(Image.frombytes("RGB", (event.width, event.height), event.pixels),
                           f"{event.kind} {event.step}")
    return event.path


def fit_image(img: Image.Image, width: int, height: int, background: tuple[int, int, int] | None = None) -> Image.Image:
    """The image resized (LANCZOS, aspect kept) and centred on a width x (2*height) canvas of `background`
    (transparent when None)."""
    return fit_pixels(img, width, height * 2, background)


def image_strips(img: Image.Image, width: int, height: int,
                 background: tuple[int, int, int] | None = None) -> list[Strip]:
    """`height` lines of `width` cells: the image as half blocks (upper pixel = background colour)."""
    pixels = Pixels.from_image(fit_image(img, width, height, background))
    # rich-pixels keeps its segments; going through a Console to get them back would cost more
    segments = pixels._segments.segments if pixels._segments is not None else []
    lines = [list(line) for line in Segment.split_lines(segments)]
    pad = Style(bgcolor=Color.from_rgb(*background)) if background is not None else None
    strips = [Strip(line).adjust_cell_length(width, pad) for line in lines[:height]]
    while len(strips) < height:
        strips.append(Strip.blank(width, pad))
    return strips


def picture_strips(img: Image.Image, width: int, height: int, background: tuple[int, int, int] | None,
                   pictures: Pictures) -> list[Strip]:
    """The image in `height` lines of `width` cells, the way the terminal shows pictures."""
    if pictures.protocol == "kitty":
        return kitty_strips(img, width, height, background, pictures.cell_px, tmux=pictures.tmux)
    if pictures.protocol == "sixel":
        return sixel_strips(img, width, height, background, pictures.cell_px)
    return image_strips(img, width, height, background)


def message_strips(text: str, width: int, height: int, style: Style | None = None,
                   background: tuple[int, int, int] | None = None) -> list[Strip]:
    """A placeholder: `text` centred in an otherwise blank box."""
    base = Style(bgcolor=Color.from_rgb(*background)) if background is not None else None
    style = (base + style) if base is not None and style is not None else (style or base)
    mid = height // 2
    out = []
    for y in range(height):
        if y == mid:
            shown = text[:width].center(width)
            out.append(Strip([Segment(shown, style)], width))
        else:
            out.append(Strip.blank(width, base))
    return out


class ThumbnailCache:
    """Rendered images by (source, width, height), least recently used dropped first; renders on a pool.

    `request` returns at once; `done()` is called from a pool thread after each render (the widget posts a
    coalescing message). A request that is no longer `wanted` when its turn comes (the user scrolled on) is
    skipped, so fast scrolling through thousands of images never builds a backlog.
    """

    # 400 thumbnails of 14x7 cells are ~20 MB of styled segments: pages of a class back and forth stay cached.
    def __init__(self, load: Loader, max_items: int = 400, threads: int = 2,
                 pictures: Pictures | None = None) -> None:
        self.load = load
        self.pictures = pictures or Pictures()
        self.max_items = max_items
        self._lock = threading.Lock()
        self._items: OrderedDict[Key, list[Strip]] = OrderedDict()
        self._pending: set[Key] = set()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tlbench-thumbs")
        self.errors: dict[Hashable, str] = {}
        self.rendered = 0  # renders done (tests and the benchmark read it)

    def get(self, key: Key) -> list[Strip] | None:
        with self._lock:
            strips = self._items.get(key)
            if strips is not None:
                self._items.move_to_end(key)
            return strips

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def request(self, keys: Iterable[Key], wanted: Callable[[Key], bool], done: Callable[[], None]) -> int:
        """Queue the keys not cached or queued yet; returns how many were queued."""
        queued = 0
        with self._lock:
            todo = [k for k in keys if k not in self._items and k not in self._pending]
            self._pending.update(todo)
        for key in todo:
            self._pool.submit(self._render, key, wanted, done)
            queued += 1
        return queued

    def render_now(self, key: Key) -> list[Strip]:
        """Render in this thread (pool threads, benchmarks); cached like a requested render."""
        source, width, height, background = key
        try:
            rows_px = height * (self.pictures.cell_px[1] if self.pictures.graphics else 2)
            img = source.image if isinstance(source, MemoryImage) else self.load(source, rows_px)
            strips = picture_strips(img, width, height, background, self.pictures)
        except Exception as err:  # noqa: BLE001 - an unreadable image becomes a placeholder, never a crash
            self.errors[source] = str(err) or type(err).__name__
            strips = message_strips("✗ unreadable", width, height, Style(color="red"), background)
        with self._lock:
            self._items[key] = strips
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
            self.rendered += 1
        return strips

    def _render(self, key: Key, wanted: Callable[[Key], bool], done: Callable[[], None]) -> None:
        # Deciding to skip and leaving the queue are one step under the lock: a request made meanwhile (the user
        # scrolled back) either finds the key still queued and now wanted, so it is rendered here, or finds it
        # gone and queues it again. Apart, a request could land between them and the picture never came
        # (a grid waiting for it forever under load).
        with self._lock:
            skip = not wanted(key)
            if skip:
                self._pending.discard(key)
        if skip:
            done()
            return
        try:
            self.render_now(key)
        finally:
            with self._lock:
                self._pending.discard(key)
            done()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
