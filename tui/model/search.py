"""The Model screen's backbone search (/): every backbone by name, timm's ~1,800 pretrained models included.

Typing lists the first SEARCH_CAP matches at once (names only), then measures them one by one on a worker
thread (params, input, feature width, weights status: a meta-device build each), so thousands of names never
become thousands of rows or a frozen screen. A newer search cancels the one under way.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.widgets import Input
from textual.worker import get_current_worker

from tui.engine_calls import backbone_row, search_backbones

WEIGHTS_STYLE = {"shipped": "green", "cached": "green", "download": "yellow", "missing": "red"}
WEIGHTS_WORDS = {"shipped": "shipped", "cached": "cached", "download": "needs download", "missing": "missing"}
# Rows a search lists: each one is measured (~0.5 s), thousands of matches are not.
SEARCH_CAP = 30
MEASURE_AFTER = 0.3  # seconds without a key before the listed rows are measured


def weights_text(row: dict) -> str:
    return (WEIGHTS_WORDS.get(row["weights"]) or str(row["weights"])) if row.get("weights") else "…"


def row_cells(row: dict) -> list:
    """The table's cells after the mark; a row still being measured shows its name and dots."""
    if row.get("weights") is None:
        return [row["name"]] + [Text("…", justify="right")] * 4 + [Text("…", style="dim")]
    top1 = f"{row['imagenet_top1']:.1f}" if row.get("imagenet_top1") else "-"
    params = f"{row['params'] / 1e6:.1f}M" if row.get("params") else "-"
    return [row["name"], Text(params, justify="right"), Text(str(row.get("input_size") or "-"), justify="right"),
            Text(top1, justify="right"), Text(str(row.get("feature_dim") or "-"), justify="right"),
            Text(weights_text(row), style=WEIGHTS_STYLE.get(row["weights"], ""))]


def backbone_search(text: str) -> tuple[list[str], int]:
    """The first SEARCH_CAP names matching `text` (ours, then timm's), and how many match. Imports timm the
    first time (seconds): a worker thread calls it."""
    found = search_backbones(text)
    return found[:SEARCH_CAP], len(found)


def measured_row(name: str) -> dict:
    """One table row (params, input, features, weights status): torch, so on the worker thread."""
    return backbone_row(name)


class BackboneSearch(Input):
    """The search box: posts Listed (the matches, or rows=None for an empty box) and Measured (one row)."""

    class Listed(Message):
        def __init__(self, text: str, rows: list[dict] | None, total: int) -> None:
            super().__init__()
            self.text, self.rows, self.total = text, rows, total

    class Measured(Message):
        def __init__(self, row: dict) -> None:
            super().__init__()
            self.row = row

    def __init__(self) -> None:
        super().__init__(placeholder="search backbones by name: dinov2, convnext in22k, clip … (enter: the list)",
                         id="backbone-search")
        self.measured: dict[str, dict] = {}  # rows measured so far, by name (written by the worker only)

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        text = event.value.strip()
        if text:
            self.search(text)
        else:
            self.workers.cancel_group(self, "backbone-search")
            self.post_message(self.Listed("", None, 0))

    @work(thread=True, exclusive=True, group="backbone-search", exit_on_error=False)
    def search(self, text: str) -> None:
        worker = get_current_worker()
        names, total = backbone_search(text)
        if worker.is_cancelled:
            return
        self.post_message(self.Listed(text, [self.measured.get(n, {"name": n}) for n in names], total))
        # a row is measured by building its model (a timm ViT: ~0.5 s): wait until the typing pauses, so each key
        # of "resnet18 a1" does not start a build the next key throws away
        pause_until = time.monotonic() + MEASURE_AFTER
        while time.monotonic() < pause_until:
            if worker.is_cancelled:
                return
            time.sleep(0.02)
        for name in names:
            if worker.is_cancelled:
                return
            if name not in self.measured:
                self.measured[name] = measured_row(name)
                self.post_message(self.Measured(self.measured[name]))
