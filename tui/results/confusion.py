"""The confusion matrix as a coloured grid: rows are the true class, columns the predicted one.

Made for 37+ classes at 80x24: the header row (column numbers) and the row labels (number and name) stay put
while the cells scroll under them, and the cursor's row label and column number light up with it, so a cell
always says which pair it is. `n` toggles counts / row-normalised percentages (each row sums to 100: the
share of a true class that went to each prediction). Each cell's colour is its share of the row (green on the
diagonal, red off it). No scrollbars (they were stray glyphs in the middle of an 80-column screen): the
screen's status line says where the cursor is.
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui.widgets.fitline import shorten_middle

LOW = (40, 40, 48)
GREEN = (30, 160, 80)
RED = (200, 50, 50)
ON = Color.from_rgb(240, 240, 240)
OFF = Color.from_rgb(110, 110, 120)


def blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> Color:
    t = max(0.0, min(1.0, t))
    return Color.from_rgb(*(round(x + (y - x) * t) for x, y in zip(a, b)))


def percent_text(count: int, total: int) -> str:
    """A row-normalised cell: whole percent, "<1" for a count too small to round to 1%, "·" for none."""
    if not count or not total:
        return "·"
    share = 100 * count / total
    return "<1" if share < 0.5 else f"{share:.0f}"


class ConfusionGrid(Widget, can_focus=True):
    BINDINGS = [
        Binding("enter", "choose", "Images", id="confusion.choose"),
        Binding("up", "move(0, -1)", "Up", show=False, id="confusion.up"),
        Binding("down", "move(0, 1)", "Down", show=False, id="confusion.down"),
        Binding("left", "move(-1, 0)", "Left", show=False, id="confusion.left"),
        Binding("right", "move(1, 0)", "Right", show=False, id="confusion.right"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="confusion.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="confusion.page_down"),
        Binding("home", "row_end(0)", "First column", show=False, id="confusion.home"),
        Binding("end", "row_end(1)", "Last column", show=False, id="confusion.end"),
        Binding("d", "diagonal", "Diagonal", show=False, id="confusion.diagonal",
                tooltip="Move the cursor to the diagonal (the correct predictions of this row's class)"),
    ]

    COMPONENT_CLASSES = {"confusion-grid--label", "confusion-grid--cursor", "confusion-grid--cursor-label",
                         "confusion-grid--cursor-blurred"}

    DEFAULT_CSS = """
    ConfusionGrid { height: 1fr; }
    ConfusionGrid > .confusion-grid--label { color: $text-muted; }
    ConfusionGrid > .confusion-grid--cursor { background: $accent; color: $text; text-style: bold; }
    ConfusionGrid > .confusion-grid--cursor-blurred { text-style: bold reverse; }
    ConfusionGrid > .confusion-grid--cursor-label { color: $accent; text-style: bold reverse; }
    """

    cursor: reactive[tuple[int, int]] = reactive((0, 0), init=False)  # (predicted column, true row)
    normalised: reactive[bool] = reactive(False, init=False)

    class CellChosen(Message):
        def __init__(self, grid: ConfusionGrid, true: int, predicted: int) -> None:
            super().__init__()
            self.grid, self.true, self.predicted = grid, true, predicted

        @property
        def control(self) -> ConfusionGrid:
            return self.grid

    class CellHighlighted(CellChosen):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.classes_: list[str] = []
        self.matrix: list[list[int]] = []
        self.row_totals: list[int] = []
        self.biggest = 0
        self.top = 0  # first visible row
        self.left = 0  # first visible column

    # ------------------------------------------------------------------------------------ data and geometry

    def set_matrix(self, classes: list[str], matrix: list[list[int]]) -> None:
        self.classes_, self.matrix = list(classes), matrix
        self.row_totals = [sum(row) for row in matrix]
        self.biggest = max((v for row in matrix for v in row), default=0)  # every line asks for cell_w
        self.top = self.left = 0
        self.set_reactive(ConfusionGrid.cursor, (0, 0))
        self.refresh()

    @property
    def n(self) -> int:
        return len(self.classes_)

    @property
    def number_w(self) -> int:
        return len(str(max(0, self.n - 1)))

    @property
    def cell_w(self) -> int:
        """Wide enough for the column number, the biggest count and "100", plus one space."""
        return max(self.number_w, len(str(self.biggest)), 3) + 1

    @property
    def label_w(self) -> int:
        """The row labels' column: "12 american_…dog", at most a third of the width (and at least 8)."""
        width = self.size.width or 80
        longest = self.number_w + 1 + max((len(c) for c in self.classes_), default=1)
        return max(8, min(longest, 22, width // 3)) + 1

    @property
    def visible_columns(self) -> int:
        return max(1, ((self.size.width or 80) - self.label_w) // self.cell_w)

    @property
    def visible_rows(self) -> int:
        return max(1, (self.size.height or 10) - 1)  # the header row is always there

    def window(self) -> tuple[range, range]:
        """The rows and columns on screen now."""
        return (range(self.top, min(self.n, self.top + self.visible_rows)),
                range(self.left, min(self.n, self.left + self.visible_columns)))

    def row_label(self, i: int) -> str:
        width = self.label_w - 1
        number = str(i).rjust(self.number_w)
        return (number + " " + shorten_middle(self.classes_[i], max(1, width - len(number) - 1))).ljust(width) + " "

    def _follow(self) -> None:
        """Scroll so the cursor is on screen (keeping the window where it is when it already is)."""
        x, y = self.cursor
        rows, cols = self.visible_rows, self.visible_columns
        self.top = min(max(0, self.n - rows), max(0, min(self.top, y), y - rows + 1))
        self.left = min(max(0, self.n - cols), max(0, min(self.left, x), x - cols + 1))

    def on_resize(self, event: events.Resize) -> None:
        self._follow()

    # ------------------------------------------------------------------------------------ drawing

    def cell_text(self, i: int, j: int) -> str:
        count = self.matrix[i][j]
        if self.normalised:
            return percent_text(count, self.row_totals[i])
        return str(count) if count else "·"

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        label_style = base + self.get_component_rich_style("confusion-grid--label")
        rows, cols = self.window()
        if not self.n or y > len(rows):
            return Strip.blank(width, base)
        x_cur, y_cur = self.cursor
        lit = base + self.get_component_rich_style("confusion-grid--cursor-label")
        cw = self.cell_w
        segments: list[Segment] = []
        if y == 0:
            corner = "true\\pred %" if self.normalised else "true\\pred"
            if len(corner) >= self.label_w:
                corner = "%" if self.normalised else "t\\p"
            segments.append(Segment(corner.ljust(self.label_w), label_style))
            for j in cols:
                segments.append(Segment(str(j).rjust(cw - 1) + " ", lit if j == x_cur else label_style))
        else:
            i = rows[y - 1]
            segments.append(Segment(self.row_label(i), lit if i == y_cur else label_style))
            total = self.row_totals[i]
            for j in cols:
                count = self.matrix[i][j]
                share = count / total if total else 0.0
                bg = blend(LOW, GREEN if i == j else RED, share ** 0.6 if count else 0.0)
                style = base + Style(color=ON if count else OFF, bgcolor=bg)
                if (j, i) == self.cursor:
                    style += self.get_component_rich_style(
                        "confusion-grid--cursor" if self.has_focus else "confusion-grid--cursor-blurred")
                segments.append(Segment(self.cell_text(i, j).rjust(cw - 1) + " ", style))
        return Strip(segments).crop(0, width).adjust_cell_length(width, base)

    # ------------------------------------------------------------------------------------ cursor

    def watch_cursor(self, cursor: tuple[int, int]) -> None:
        self._follow()
        self.refresh()
        x, y = cursor
        self.post_message(self.CellHighlighted(self, y, x))

    def watch_normalised(self) -> None:
        self.refresh()

    def _move_to(self, x: int, y: int) -> None:
        if self.n:
            self.cursor = (max(0, min(self.n - 1, x)), max(0, min(self.n - 1, y)))

    def action_move(self, dx: int, dy: int) -> None:
        x, y = self.cursor
        self._move_to(x + dx, y + dy)

    def action_page(self, direction: int) -> None:
        x, y = self.cursor
        self._move_to(x, y + direction * self.visible_rows)

    def action_row_end(self, end: int) -> None:
        self._move_to(self.n - 1 if end else 0, self.cursor[1])

    def action_diagonal(self) -> None:
        self._move_to(self.cursor[1], self.cursor[1])

    def action_choose(self) -> None:
        if self.n:
            x, y = self.cursor
            self.post_message(self.CellChosen(self, y, x))

    def toggle_normalised(self) -> None:
        self.normalised = not self.normalised

    def select(self, true: int, predicted: int) -> None:
        self._move_to(predicted, true)

    def on_click(self, event: events.Click) -> None:
        rows, cols = self.window()
        if event.y >= 1 and event.y - 1 < len(rows) and event.x >= self.label_w:
            j = self.left + (event.x - self.label_w) // self.cell_w
            if j in cols:
                i = rows[event.y - 1]
                if (j, i) == self.cursor and event.chain >= 2:
                    self.action_choose()
                self.cursor = (j, i)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
