"""One line of text that fits its width: long parts (paths, run and class names) shrink from the middle with
"…", so the numbers around them and the ends of the names (a file name, a run's mode) stay readable.

A status line that ends "· PNGs in runs/2026…-probe/attacks/x" must never lose the path to a wrap onto a
line that is not shown, nor cut the accuracy off an 80-column header.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

ELLIPSIS = "…"


def shorten_middle(text: str, width: int, tail: float = 0.5) -> str:
    """`text` in at most `width` characters: kept whole when it fits, else its start and end joined by "…".
    `tail` is the share of the kept characters taken from the end (paths: more, the file name is there)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return ELLIPSIS
    keep = width - 1
    end = max(0, min(keep, round(keep * tail)))
    start = keep - end
    return text[:start] + ELLIPSIS + (text[len(text) - end:] if end else "")


@dataclass(frozen=True)
class Part:
    """A piece of a FitLine: fixed text (numbers, labels), or text that may shrink down to `least` characters.
    An `optional` part (a hint, a detail) is left out, last first, when the line cannot fit otherwise. `lead`
    is fixed text in front of it that goes and stays with it (" · saved in " before a path: never one without
    the other)."""

    text: str
    style: str = ""
    shrink: bool = False
    least: int = 8
    tail: float = 0.5
    optional: bool = False
    lead: str = ""


def fit_parts(parts: list[Part], width: int) -> list[tuple[str, str]]:
    """(text, style) pairs whose total length is at most `width` where the parts allow it: optional parts go
    first (the last one first), so names stay whole rather than make room for a hint; then the longest
    shrinkable part gives up characters, none below its `least`."""
    parts = list(parts)
    while sum(len(p.lead) + len(p.text) for p in parts) > width and any(p.optional for p in parts):
        del parts[max(i for i, p in enumerate(parts) if p.optional)]
    texts = [p.text for p in parts]
    over = sum(map(len, texts)) + sum(len(p.lead) for p in parts) - width
    if over <= 0:
        return [(p.lead + t, p.style) for t, p in zip(texts, parts)]
    lengths = [len(t) for t in texts]
    while over > 0:
        candidates = [i for i, p in enumerate(parts) if p.shrink and lengths[i] > min(p.least, len(p.text))]
        if not candidates:
            break
        i = max(candidates, key=lambda k: lengths[k])
        lengths[i] -= 1
        over -= 1
    return [(p.lead + (shorten_middle(p.text, n, p.tail) if p.shrink else p.text), p.style)
            for p, n in zip(parts, lengths)]


class FitLine(Static):
    """A Static of one line built from parts; `update("text")` is one fixed part, as with a Static.

    Rendered at its current width, so a resize re-fits it; what still does not fit after every shrinkable part
    reached its least is cut at the end with "…" (only when the line is narrower than its fixed parts)."""

    DEFAULT_CSS = """
    FitLine { height: 1; }
    """

    def __init__(self, *parts: Part | str, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self.parts: list[Part] = [Part(p) if isinstance(p, str) else p for p in parts]

    def set_parts(self, *parts: Part | str) -> None:
        self.parts = [Part(p) if isinstance(p, str) else p for p in parts]
        self.refresh()

    def update(self, content="", *, layout: bool = False) -> None:  # noqa: ARG002 - a Static's signature
        self.set_parts(str(content))

    @property
    def plain(self) -> str:
        """The full text, unshortened."""
        return "".join(p.lead + p.text for p in self.parts)

    def render(self) -> Text:
        width = self.content_region.width or self.size.width
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for piece, style in (fit_parts(self.parts, width) if width > 0
                             else [(p.lead + p.text, p.style) for p in self.parts]):
            text.append(piece, style)
        return text
