"""One run opened from the Runs screen: its config, its curves and its evaluation report; u uses its model."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from tui.run_view import RunView, kind_summary, recipe_lines, short_time
from tui.runs.compare import CONFIG_KEYS_FIRST
from tui.runs.listing import run_command
from tui.runs.style import STATUS_STYLE, WIDE, fmt_acc
from tui.screen import copy_command
from tui.state import display_path
from tui.widgets.curves import CurvePlot
from tui.widgets.fitline import FitLine, Part, shorten_middle
from tui.widgets.keybar import KeyBar
from tui.widgets.text import clock, middle_truncate


def config_table(config: dict, width: int = 0) -> Table:
    """The run's settings, one per row. In `width` cells (0: no limit) a value never wraps in the middle of a
    word: a path or a name longer than its column keeps both ends ("…" in the middle), lists wrap between items."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    keys = [k for k in CONFIG_KEYS_FIRST if k in config] + sorted(k for k in config if k not in CONFIG_KEYS_FIRST)
    value_w = width - max(map(len, keys), default=0) - 1 if width else 0
    for k in keys:
        v = config[k]
        if k == "classes" and isinstance(v, list):
            v = f"{len(v)}: " + ", ".join(map(str, v[:12])) + (" …" if len(v) > 12 else "")
        elif k == "dataset":
            v = display_path(v)
        elif k == "created":
            v = short_time(v) or v  # the minute it started, whole: '2026-01-01 12:00'
        elif isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        v = str(v)
        if value_w > 0:
            v = " ".join(middle_truncate(word, value_w) for word in v.split(" "))
        table.add_row(k, v)
    return table


class ConfigTable(Widget):
    """config_table at the width it is given: the words that would not fit are shortened, never folded."""

    DEFAULT_CSS = "ConfigTable { height: auto; }"

    def __init__(self, config: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.fit_width = 0

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self.fit_width = width  # the height is measured before the widget has its size
        return super().get_content_height(container, viewport, width)

    def render(self) -> Table:
        return config_table(self.config, self.size.width or self.fit_width)


def report_text(view: RunView, name_w: int = 16) -> Text:
    if view.kind != "train":
        text = Text(kind_summary(view.kind, view.result) if view.result else
                    f"no result file: the {view.kind} job did not finish", "bold")
        return text.append("\nnot a training run: it has no model to use. y copies the command that runs it "
                           "again.", "dim")
    recipe = recipe_lines(view)
    if recipe:  # auto: what it chose and what it tried, above the numbers of the winner
        head = Text("\n".join(recipe) + "\n\n")
        head.stylize("bold", 0, len(recipe[0]))
        return head + report_text_of(view, name_w)
    return report_text_of(view, name_w)


def sessions(view: RunView) -> str:
    """" · 2 sessions" for a resumed run (its time and curves cover them all), else ""."""
    resumed = view.config.get("resumed")
    return f" · {len(resumed) + 1} sessions" if isinstance(resumed, list) and resumed else ""


def report_text_of(view: RunView, name_w: int) -> Text:
    if view.report is None:
        return Text(view.report_error or "No report.json yet: e on the Results screen (4) evaluates the run.",
                    "dim")
    r = view.report

    def num(value) -> str:
        return f"{value:.2f}" if isinstance(value, (int, float)) else "-"

    text = Text()
    acc = r.get("accuracy")
    text.append(f"accuracy {acc:.4f}" if isinstance(acc, (int, float)) else "accuracy -", "bold")
    if isinstance(r.get("top5"), (int, float)) and len(r.get("classes") or []) > 5:  # else 1.000 by construction
        text.append(f" · top-5 {r['top5']:.4f}")
    text.append(f" · {r.get('split', 'val')} n {r.get('n', '-')}\n")
    text.append(f"{'class':<{name_w}}  prec recall   F1    n\n", "bold")
    for row in r["per_class"]:
        text.append(f"{shorten_middle(str(row.get('class')), name_w):<{name_w}}  {num(row.get('precision')):>4} "
                    f"{num(row.get('recall')):>6} {num(row.get('f1')):>4} {row.get('support', '-'):>4}\n")
    if r["most_confused"]:
        text.append("most confused: " + ", ".join(f"{p['true']}→{p['predicted']} ({p['count']})"
                                                for p in r["most_confused"][:5]))
    return text


class RunDetailScreen(Screen[bool]):
    """One run: config, curves, report. u uses its model for Results, Attack and Dream: dismissed with True."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="run.back"),
        Binding("u", "use", "Use", id="run.use", tooltip="Results, Attack and Dream use this run"),
        Binding("y", "copy_command", "Command", id="run.copy_command",
                tooltip="Copy the tlbench command line that runs it again"),
    ]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        v = self.view
        yield FitLine(Part(v.name, shrink=True, least=10, tail=0.6), " · ",
                      Part(v.status, STATUS_STYLE.get(v.status, "")),
                      f" · best {fmt_acc(v.best_val_acc)} · {clock(v.seconds)}{sessions(v)}",
                      f" · ended {v.finished[5:]}" if v.finished else "",  # MM-DD HH:MM: 80 columns
                      Part(f" · {v.status_detail}", optional=True), id="run-title")
        with Horizontal(id="run-body"):
            with VerticalScroll(id="run-config"):
                yield ConfigTable(v.config)
            with Vertical(id="run-right"):
                with Horizontal(id="run-curves"):
                    yield CurvePlot("loss", [("train_loss", "train"), ("val_loss", "val")], id="run-loss")
                    yield CurvePlot("accuracy", [("train_acc", "train"), ("val_acc", "val")], id="run-acc")
                with VerticalScroll(id="run-report"):
                    yield Static(report_text(v, 22 if self.app.size.width >= WIDE else 14))
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#run-loss", CurvePlot).set_history(self.view.metrics)
        self.query_one("#run-acc", CurvePlot).set_history(self.view.metrics)

    def action_close(self) -> None:
        self.dismiss(False)

    def action_use(self) -> None:
        if self.view.kind != "train":
            self.notify(f"A {self.view.kind} folder has no model to use.", severity="warning")
            return
        self.dismiss(True)

    def action_copy_command(self) -> None:
        copy_command(self, run_command(self.view))
