"""One run opened from the Runs screen: its config, its curves and its evaluation report; u uses its model."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
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


def config_value(key: str, value) -> str:
    """A setting as the detail shows it: the class list shortened, the dataset as the Runs screen shows it, the
    start time to the minute."""
    if key == "classes" and isinstance(value, list):
        return f"{len(value)}: " + ", ".join(map(str, value[:12])) + (" …" if len(value) > 12 else "")
    if key == "dataset":
        return display_path(value)
    if key == "created":
        return short_time(value) or str(value)  # '2026-01-01 12:00', whole
    if isinstance(value, dict):
        return ", ".join(f"{a}={b}" for a, b in value.items())
    return str(value)


def config_table(config: dict, width: int = 0) -> RenderableType:
    """The run's settings, one per row. In `width` cells (0: no limit) no word is folded: a value with a word
    longer than its column goes on the line under its name, at the panel's width (efficientnet_lite0 whole at 80
    columns), and only a word longer than that (a path) keeps both ends with "…" in the middle."""
    keys = [k for k in CONFIG_KEYS_FIRST if k in config] + sorted(k for k in config if k not in CONFIG_KEYS_FIRST)
    key_w = max(map(len, keys), default=0)
    value_w = width - key_w - 1 if width else 0
    rows: list[RenderableType] = []
    for k in keys:
        v = config_value(k, config[k])
        if value_w > 0 and any(len(word) > value_w for word in v.split(" ")):
            below = " ".join(middle_truncate(word, width - 2) for word in v.split(" "))
            rows.append(Text(k, "bold"))
            rows.append(Padding(Text(below), (0, 0, 0, 2)))
            continue
        row = Table.grid(padding=(0, 1))
        row.add_column(style="bold", no_wrap=True, width=key_w)
        row.add_column(overflow="fold")
        row.add_row(k, v)
        rows.append(row)
    return Group(*rows)


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

    def render(self) -> RenderableType:
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
