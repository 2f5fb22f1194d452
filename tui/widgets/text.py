"""Text for a few cells: long names and paths keep both ends (the middle gives way to "…"); durations as clocks."""

from __future__ import annotations

import math

from rich.cells import cell_len


def middle_truncate(text: str, width: int) -> str:
    """`text` in at most `width` cells: 'american_pit_bull_terrier' -> 'american_p…l_terrier'.

    Both ends stay readable (class names differ at the start, file names and paths at the end).
    """
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    if width == 1:
        return "…"
    keep = width - 1
    head, tail = (keep + 1) // 2, keep // 2
    out_head, used = "", 0
    for ch in text:
        if used + cell_len(ch) > head:
            break
        out_head += ch
        used += cell_len(ch)
    out_tail, used = "", 0
    for ch in reversed(text):
        if used + cell_len(ch) > tail:
            break
        out_tail = ch + out_tail
        used += cell_len(ch)
    return out_head + "…" + out_tail


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
