"""What the Runs screens share in looks: the colour of each status, of each compared run, and number formats."""

from __future__ import annotations

STATUS_STYLE = {"done": "green", "running": "bold cyan", "stopped": "yellow", "failed": "bold red"}
WIDE = 100  # columns from which dates are shown whole and names get more room

# One colour per compared run, in marking order: textual-plotext's own series colours (chosen to read on
# dark and light themes), as RGB so the curves and the legend drawn by Rich are the very same colour.
RUN_COLOURS = ((0, 130, 200), (230, 25, 75), (60, 180, 75), (245, 130, 48), (145, 30, 180), (70, 240, 240),
               (240, 50, 230), (255, 225, 25))
MAX_COMPARED = len(RUN_COLOURS)  # more would repeat a colour, and two curves could not be told apart


def run_colour(index: int) -> str:
    """The Rich colour of the index-th compared run (0-based)."""
    r, g, b = RUN_COLOURS[index % len(RUN_COLOURS)]
    return f"#{r:02x}{g:02x}{b:02x}"


def fmt_acc(value: float | None) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"
