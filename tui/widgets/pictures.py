"""Pictures as the terminal can show them: the Kitty graphics protocol, Sixel, or half blocks.

Each way turns an image into `height` strips of `width` cells that do not depend on where they are drawn, so
the ThumbnailCache keeps them as it keeps half blocks and every picture widget joins them the same way:

- kitty: the PNG goes to the terminal with a virtual placement (an APC sequence in a zero-width control
  segment at the start of the first line), and every cell is a placeholder character whose colour names the
  image and whose combining marks name its row and column; the terminal draws the picture under them, so
  scrolling, cropping and modal screens need nothing more.
- sixel: blank cells, and on the last line, before its last cell, the Sixel data drawn from the picture's
  top-left corner, reached by relative cursor moves between a save and a restore of the cursor. Before the
  last cell, not after it: after a cell at the screen's right edge the cursor waits to wrap, and a move left
  from there lands one column short. That last space then covers one cell of the picture's corner.
- halfblock: two pixels a cell (rich-pixels), for every other terminal, and in the tests.

The protocol is chosen once at start-up (`at_start`, before Textual owns the terminal) and forced with
TLBENCH_IMAGES; engine.core.image_protocol reads the environment, and textual-image asks the terminal when the
environment says nothing sure.
"""

from __future__ import annotations

import base64
import io
import itertools
import os
import random
import sys
from dataclasses import dataclass

from PIL import Image
from rich.color import Color
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.color import Color as TextualColor
from textual.filter import LineFilter
from textual.strip import Strip
from textual_image._sixel import image_to_sixels
from textual_image._terminal import get_cell_size

from engine.core import image_protocol
from tui.widgets.kitty_cells import DIACRITICS, PLACEHOLDER

# Rich passes a control segment's text to the terminal untouched and counts it as zero cells wide.
ZERO_WIDTH = ((ControlType.CURSOR_FORWARD, 0),)
KITTY_CHUNK = 4096  # base64 bytes per APC sequence, as the protocol asks


@dataclass(frozen=True)
class Pictures:
    protocol: str = "halfblock"  # one of image_protocol.PROTOCOLS
    cell_px: tuple[int, int] = (10, 20)  # one cell in pixels (width, height): the size Sixel and PNGs are made at
    reason: str = ""
    tmux: bool = False  # inside tmux: Kitty's sequences go through its passthrough (allow-passthrough on)

    @property
    def graphics(self) -> bool:
        return self.protocol != "halfblock"


def from_env() -> Pictures:
    """What the environment says, without asking the terminal (the app's default; tests pin TLBENCH_IMAGES)."""
    found = image_protocol.detect()
    return Pictures(found.protocol, reason=found.reason, tmux=bool(os.environ.get("TMUX")))


def at_start() -> Pictures:
    """At start-up, before Textual reads the terminal: the environment's answer, else the terminal's own (its
    device attributes list Sixel, or it answers a Kitty graphics query); the cell size in pixels from the
    terminal. Raises ConfigError for a TLBENCH_IMAGES outside the choices."""
    found = image_protocol.detect()
    protocol, reason = found.protocol, found.reason
    tty = bool(sys.__stdout__ and sys.__stdout__.isatty())
    if not found.certain and tty:
        # importing this package asks the terminal (a Sixel and a Kitty query, 0.1 s each at most): only here,
        # once, while nothing else reads the terminal
        from textual_image import renderable

        if renderable.Image is renderable.SixelImage:
            protocol, reason = "sixel", "the terminal lists Sixel in its device attributes"
        elif renderable.Image is renderable.TGPImage:
            protocol, reason = "kitty", "the terminal answered a Kitty graphics query"
        else:
            reason += "; the terminal answered no graphics query"
    cell = (10, 20)
    if protocol != "halfblock" and tty:
        size = get_cell_size()  # the window's size in pixels (ioctl), else an escape sequence, else VT340's 10x20
        cell = (size.width, size.height)
    return Pictures(protocol, cell, reason, bool(os.environ.get("TMUX")))


def fit_pixels(img: Image.Image, px_w: int, px_h: int, background: tuple[int, int, int] | None) -> Image.Image:
    """The image resized (LANCZOS, aspect kept) and centred on a px_w x px_h canvas of `background`
    (transparent when None)."""
    scale = min(px_w / img.width, px_h / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    resized = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    fill = (*background, 255) if background is not None else (0, 0, 0, 0)
    canvas = Image.new("RGBA", (px_w, px_h), fill)
    canvas.paste(resized, ((px_w - size[0]) // 2, (px_h - size[1]) // 2))
    return canvas


def _pad(background: tuple[int, int, int] | None) -> Style | None:
    return Style(bgcolor=Color.from_rgb(*background)) if background is not None else None


# Kitty image ids are 24 bits here (the placeholder's foreground colour); a random start keeps two workbenches
# in one kitty window apart.
_kitty_ids = itertools.count(random.randint(1, 1 << 22))


def next_kitty_id() -> int:
    return next(_kitty_ids) % ((1 << 24) - 1) + 1


def tmux_passthrough(sequence: str) -> str:
    """A sequence tmux hands to the outer terminal untouched (with `set -g allow-passthrough on`)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def kitty_strips(img: Image.Image, width: int, height: int, background: tuple[int, int, int] | None,
                 cell_px: tuple[int, int], image_id: int | None = None, tmux: bool = False) -> list[Strip]:
    width, height = min(width, len(DIACRITICS)), min(height, len(DIACRITICS))
    image_id = image_id or next_kitty_id()
    png = io.BytesIO()
    fit_pixels(img, width * cell_px[0], height * cell_px[1], background).save(png, format="PNG")
    data = base64.standard_b64encode(png.getvalue()).decode("ascii")
    chunks = [data[i:i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    # a=T: transmit and place; U=1: a virtual placement the placeholders show; q=2: no reply on stdin
    sent = []
    for n, chunk in enumerate(chunks):
        more = int(n < len(chunks) - 1)
        head = f"a=T,U=1,f=100,i={image_id},c={width},r={height},q=2,m={more}" if n == 0 else f"m={more},q=2"
        apc = f"\x1b_G{head};{chunk}\x1b\\"
        # in tmux only the PNG needs passing through: the placeholders are text tmux draws itself
        sent.append(tmux_passthrough(apc) if tmux else apc)
    colour = Color.from_rgb((image_id >> 16) & 255, (image_id >> 8) & 255, image_id & 255)
    bg = Color.from_rgb(*background) if background is not None else None
    style = Style(color=colour, bgcolor=bg)
    strips = []
    for row in range(height):
        cells = "".join(PLACEHOLDER + DIACRITICS[row] + DIACRITICS[col] for col in range(width))
        segments = [Segment(cells, style)]
        if row == 0:
            segments.insert(0, Segment("".join(sent), None, ZERO_WIDTH))
        strips.append(Strip(segments, width))
    return strips


def sixel_strips(img: Image.Image, width: int, height: int, background: tuple[int, int, int] | None,
                 cell_px: tuple[int, int]) -> list[Strip]:
    canvas = fit_pixels(img, width * cell_px[0], height * cell_px[1], background)
    rgba = (*background, 1.0) if background is not None else (0, 0, 0, 1.0)
    sixel = image_to_sixels(canvas, None, rgba)
    moves = (f"\x1b[{width - 1}D" if width > 1 else "") + (f"\x1b[{height - 1}A" if height > 1 else "")
    pad = _pad(background)
    strips = [Strip.blank(width, pad) for _ in range(height - 1)]
    last = [Segment(" " * (width - 1), pad)] if width > 1 else []
    last += [Segment("\x1b7" + moves + sixel + "\x1b8", None, ZERO_WIDTH), Segment(" ", pad)]
    strips.append(Strip(last, width))
    return strips


def without_graphics(strip: Strip) -> Strip:
    """The strip less its Sixel or Kitty sequences: for a picture half scrolled away (a Sixel drawn from its
    corner would land outside the widget) or under a modal screen."""
    if not any(seg.control for seg in strip):
        return strip
    return Strip([seg for seg in strip if not seg.control], strip.cell_length)


def has_graphics(strip: Strip) -> bool:
    return any(seg.control for seg in strip)


class KeepControls(LineFilter):
    """Another line filter (Textual's ANSI-to-truecolor one, applied to every line) that gives back each
    segment's control flag: the filter rebuilds segments without it, and a Sixel or Kitty sequence that lost
    its zero width is counted as cells, so the compositor cuts it where a scrollbar or a neighbour begins."""

    def __init__(self, inner: LineFilter) -> None:
        super().__init__(enabled=inner.enabled)
        self.inner = inner

    def apply(self, segments: list[Segment], background: TextualColor) -> list[Segment]:
        out = self.inner.apply(segments, background)
        if len(out) != len(segments) or not any(seg.control for seg in segments):
            return out
        return [Segment(new.text, new.style, old.control) if old.control else new
                for new, old in zip(out, segments)]

