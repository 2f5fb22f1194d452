"""Line charts as inline SVG, drawn in Python: the curves of a run (loss, accuracy, learning rate per epoch),
several runs overlaid, a robustness sweep. No JavaScript and no plotting library: the file reads in any
browser, offline, and stays small (a chart is a few kilobytes of text).

Each chart carries its numbers as data- attributes (`data-chart` on the <svg>, `data-series` and
`data-values` on each line) so a test, or a reader's script, can check them against the run's files.
Every label is escaped here: a run's name or a class name is text, never markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# distinguishable in colour and for most colour-blind readers (Tableau 10's first eight)
PALETTE = ("#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#9c755f", "#ff9da7")
W, H = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 30, 44
MARKERS_UP_TO = 40  # points drawn as dots too while a line has this many or fewer


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]  # (x, y); non-finite y are left out when drawn
    colour: str = PALETTE[0]
    dashed: bool = False
    key: str = ""  # data-series: what the line is (e.g. "val_acc"), for readers of the HTML


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-6:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str, name: str,
               x_ticks: Sequence[tuple[float, str]] | None = None, log_y: bool = False,
               y_range: tuple[float, float] | None = None) -> Markup:
    """An SVG chart of `series` sharing axes. `x_ticks`: (x, label) pairs instead of numbered ticks (eps
    values); `log_y`: a log scale (learning rates span decades); `y_range`: fixed limits (accuracy 0..1)."""
    def ty(v: float) -> float:
        return math.log10(v) if log_y else v

    drawn = [[(x, y) for x, y in s.points if isinstance(y, (int, float)) and math.isfinite(y)
              and (not log_y or y > 0)] for s in series]
    xs = [x for pts in drawn for x, _ in pts]
    ys = [ty(y) for pts in drawn for _, y in pts]
    rows = math.ceil(len(series) / 2)  # the legend: two columns under the plot
    out = [f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {W} {H + 16 * rows}" role="img" '
           f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
           f'<text x="{LEFT}" y="18" class="chart-title">{escape(title)}</text>']
    if not xs:
        out.append(f'<text x="{W // 2}" y="{H // 2}" text-anchor="middle" class="muted">no values to draw</text>'
                   "</svg>")
        return Markup("".join(out))
    x0, x1 = min(xs), max(xs)
    y0, y1 = (ty(y_range[0]), ty(y_range[1])) if y_range else (min(ys), max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - (abs(y0) * 0.1 or 1), y1 + (abs(y1) * 0.1 or 1)

    def at(x: float, y: float) -> tuple[float, float]:
        return (LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT),
                H - BOTTOM - (ty(y) - y0) / (y1 - y0) * (H - TOP - BOTTOM))

    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" class="frame"/>')
    y_ticks = ([10 ** k for k in range(math.floor(y0), math.ceil(y1) + 1) if y0 <= k <= y1] if log_y
               else nice_ticks(y0, y1))
    for v in y_ticks:
        _, py = at(x0, v)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    ticks = list(x_ticks) if x_ticks is not None else [(v, _fmt(v)) for v in nice_ticks(x0, x1, 6)
                                                        if float(v).is_integer() or x1 - x0 < 6]
    for v, label in ticks:
        px, _ = at(v, 10 ** y0 if log_y else y0)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{H - BOTTOM}" y2="{H - BOTTOM + 4}" class="axis"/>'
                   f'<text x="{px:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 6}" text-anchor="middle" class="muted">'
               f'{escape(x_label)}</text><text x="12" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
               f'class="muted" transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2:.0f})">{escape(y_label)}</text>')
    for k, (s, pts) in enumerate(zip(series, drawn)):
        values = ",".join(_fmt(y) for _, y in pts)
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in (at(x, y) for x, y in pts))
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<g data-series="{escape(s.key or s.label)}" data-values="{values}">'
                   f'<polyline points="{coords}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>')
        if len(pts) <= MARKERS_UP_TO:
            out.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{s.colour}"/>'
                       for px, py in (at(x, y) for x, y in pts))
        out.append("</g>")
        lx, ly = LEFT + (k % 2) * (W - LEFT) // 2, H + 16 * (k // 2) + 4
        out.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{ly - 4}" y2="{ly - 4}" stroke="{s.colour}" '
                   f'stroke-width="2"{dash}/><text x="{lx + 26}" y="{ly}" class="legend">'
                   f'{escape(_short(s.label, 34))}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _short(text: str, n: int) -> str:
    """Shortened from the middle: run names differ at both ends (date first, mode last)."""
    if len(text) <= n:
        return text
    head = (n - 1) // 2
    return text[:head] + "…" + text[len(text) - (n - 1 - head):]
