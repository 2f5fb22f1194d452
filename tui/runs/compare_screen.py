"""Marked runs side by side: validation accuracy and loss per epoch overlaid (one colour per run, the legend
naming each run with its status), and the config.json keys whose values differ, one column per run."""

from __future__ import annotations

import math

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from tui.run_view import RunView
from tui.runs.compare import (
    MISSING,
    config_diff,
    format_value,
    read_metric_rows,
    short_key,
    short_labels,
    val_curves,
)
from tui.runs.style import RUN_COLOURS, STATUS_STYLE, WIDE, fmt_acc, run_colour
from tui.state import display_path
from tui.widgets.fitline import FitLine, Part, shorten_middle
from tui.widgets.keybar import KeyBar


class RunCurves(PlotextPlot):
    """One metric of several runs against epochs, each run in its own colour (the legend is the screen's)."""

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.series: list[tuple[list[tuple[float, float]], tuple[int, int, int]]] = []

    def on_mount(self) -> None:
        super().on_mount()
        self.redraw()

    def set_series(self, series: list[tuple[list[tuple[float, float]], tuple[int, int, int]]]) -> None:
        self.series = series
        self.redraw()

    def redraw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel("epoch")
        last = 0
        for points, colour in self.series:
            if points:
                xs, ys = zip(*points)
                plt.plot(list(xs), list(ys), color=colour, marker="braille")
                last = max(last, int(max(xs)))
        if last:  # whole epochs on the axis (plotext would label 1.0, 2.8, 4.5)
            plt.xticks(list(range(1, last + 1, max(1, math.ceil(last / 6)))))
        else:
            plt.xlim(1, 2)
        self.refresh()


class CompareScreen(Screen):
    """The runs marked on the Runs screen, in the order they were marked; escape goes back."""

    BINDINGS = [Binding("escape", "close", "Back", id="compare.back")]
    AUTO_FOCUS = "#compare-diff"

    DEFAULT_CSS = """
    #compare-title { height: 1; padding: 0 1; background: $panel; }
    #compare-legend { height: auto; padding: 0 1; }
    #compare-legend > FitLine { height: 1; }
    #compare-curves { height: 1fr; min-height: 7; }
    #compare-diff-title { height: 2; padding: 0 1; color: $text-muted; border-top: solid $panel; }
    #compare-diff { height: 1fr; min-height: 4; margin: 0 1; }
    #compare-same { height: 1fr; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, views: list[RunView]) -> None:
        super().__init__()
        self.views = list(views)
        self.curves = [val_curves(read_metric_rows(v.run_dir)) for v in self.views]
        self.diff = config_diff([self.config_of(v) for v in self.views])
        self.labels = short_labels([v.name for v in self.views])

    @staticmethod
    def config_of(view: RunView) -> dict:
        """config.json with the dataset as the Runs screen shows it (relative to here, or with ~)."""
        config = dict(view.config)
        if isinstance(config.get("dataset"), str):
            config["dataset"] = display_path(config["dataset"])
        return config

    def compose(self) -> ComposeResult:
        yield FitLine(Part(f"Comparing {len(self.views)} runs", "bold"),
                      f" · {len(self.diff)} config key(s) differ",
                      Part(" · escape goes back", optional=True), id="compare-title")
        with Vertical(id="compare-legend"):
            for i, view in enumerate(self.views):
                yield FitLine(*self.legend_parts(i, view), id=f"compare-run-{i}")
        with Horizontal(id="compare-curves"):
            yield RunCurves("val accuracy", id="compare-acc")
            yield RunCurves("val loss", id="compare-loss")
        yield FitLine("config.json: only the keys whose values differ", id="compare-diff-title")
        if self.diff:
            yield DataTable(id="compare-diff", cursor_type="row", zebra_stripes=True)
        else:
            yield Static("Every config.json key has the same value in these runs (apart from when each was "
                         "created).", id="compare-same")
        yield KeyBar()

    def legend_parts(self, i: int, view: RunView) -> list[Part | str]:
        """'━━ 1 <run name> · done · best 0.9123 · 5 epochs', or why there is no curve."""
        epochs = len(self.curves[i]["val_acc"]) or len(self.curves[i]["val_loss"])
        if epochs:
            best = view.best_val_acc
            if best is None and self.curves[i]["val_acc"]:  # the list could not read a damaged metrics.jsonl
                best = max(y for _x, y in self.curves[i]["val_acc"])
            how = [f" · best {fmt_acc(best)} · {epochs} epoch(s)"]
        else:
            why = {"running": "no epoch finished yet", "failed": "no metrics: it failed at start"}
            how = [Part(f" · {why.get(view.status, 'no epoch recorded')}", "italic")]
        return [Part(f"━━ {i + 1} ", f"bold {run_colour(i)}"), Part(view.name, shrink=True, least=14, tail=0.6),
                " · ", Part(view.status, STATUS_STYLE.get(view.status, "")), *how]

    def on_mount(self) -> None:
        for widget_id, key in (("#compare-acc", "val_acc"), ("#compare-loss", "val_loss")):
            self.query_one(widget_id, RunCurves).set_series(
                [(c[key], RUN_COLOURS[i % len(RUN_COLOURS)]) for i, c in enumerate(self.curves)])
        if self.diff:
            self.fill_diff()

    def on_resize(self, event: events.Resize) -> None:
        if self.diff:  # the columns share the new width
            self.fill_diff()

    def fill_diff(self) -> None:
        """Key, then one column per run headed by its number and what tells its name apart (in its colour)."""
        table = self.query_one("#compare-diff", DataTable)
        table.clear(columns=True)
        n = len(self.views)
        room = self.app.size.width - 4  # the table's margin and scrollbar
        key_w = min(max(len(k) for k, _ in self.diff), 30 if self.app.size.width >= WIDE else 20)
        col_w = max(10, min(40, (room - key_w - 2 * (n + 1)) // n))
        table.add_column("key", width=key_w)
        for i, label in enumerate(self.labels):
            header = f"{i + 1} {label}"
            if len(header) > col_w:  # shortened below 14 a label says nothing: the number links to the legend
                header = shorten_middle(header, col_w, tail=0.6) if col_w >= 14 else f"run {i + 1}"
            table.add_column(Text(header, f"bold {run_colour(i)}"), width=col_w)
        for key, values in self.diff:
            cells = [Text(format_value(v, col_w), "dim italic" if v is MISSING else "") for v in values]
            table.add_row(short_key(key, key_w), *cells)

    def action_close(self) -> None:
        self.dismiss(None)
