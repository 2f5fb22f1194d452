"""The confusion matrix as a coloured grid: rows are the true class, columns the predicted one.

Each cell's colour is its share of the row (green on the diagonal, red off it); arrow keys move a cursor and
enter chooses the cell (the screen then shows its images).
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

LOW = (40, 40, 48)
GREEN = (30, 160, 80)
RED = (200, 50, 50)


def blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> Color:
    t = max(0.0, min(1.0, t))
    return Color.from_rgb(*(round(x + (y - x) * t) for x, y in zip(a, b)))


class ConfusionGrid(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("enter", "choose", "Images", id="confusion.choose"),
        Binding("up", "move(0, -1)", "Up", show=False, id="confusion.up"),
        Binding("down", "move(0, 1)", "Down", show=False, id="confusion.down"),
        Binding("left", "move(-1, 0)", "Left", show=False, id="confusion.left"),
        Binding("right", "move(1, 0)", "Right", show=False, id="confusion.right"),
    ]

    COMPONENT_CLASSES = {"confusion-grid--label", "confusion-grid--cursor"}

    DEFAULT_CSS = """
    ConfusionGrid > .confusion-grid--label { color: $text-muted; }
    ConfusionGrid > .confusion-grid--cursor { text-style: bold reverse; }
    """

    cursor: reactive[tuple[int, int]] = reactive((0, 0), init=False)

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
        self.cell_w = 4
        self.label_w = 6
        self.numbered = False

    def set_matrix(self, classes: list[str], matrix: list[list[int]]) -> None:
        self.classes_, self.matrix = classes, matrix
        longest = max((len(c) for c in classes), default=1)
        biggest = max((v for row in matrix for v in row), default=0)
        # Short names head their columns; longer ones are numbered and named on their row only.
        self.numbered = longest > 3
        self.cell_w = max(4, len(str(biggest)) + 1, (len(str(len(classes) - 1)) + 1) if self.numbered else longest + 1)
        self.label_w = min(18, (len(str(len(classes) - 1)) + 1 if self.numbered else 0) + longest) + 1
        self.virtual_size = Size(self.label_w + self.cell_w * len(classes), len(classes) + 1)
        self.set_reactive(ConfusionGrid.cursor, (0, 0))
        self.refresh()

    def header(self, j: int) -> str:
        return str(j) if self.numbered else self.classes_[j]

    def row_label(self, i: int) -> str:
        name = self.classes_[i]
        text = f"{i} {name}" if self.numbered else name
        return text[: self.label_w - 1].ljust(self.label_w)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        scroll_x, scroll_y = int(self.scroll_x), int(self.scroll_y)
        label_style = self.get_component_rich_style("confusion-grid--label")
        base = self.rich_style
        n = len(self.classes_)
        vy = y + scroll_y
        if not n or vy > n:
            return Strip.blank(width, base)
        segments: list[Segment] = []
        if vy == 0:
            corner = "true\\pred" if self.label_w > 9 else ("t\\p" if self.label_w > 3 else "")
            segments.append(Segment(corner.ljust(self.label_w), label_style))
            for j in range(n):
                segments.append(Segment(self.header(j).rjust(self.cell_w)[-self.cell_w:], label_style))
        else:
            i = vy - 1
            row = self.matrix[i]
            total = sum(row) or 1
            segments.append(Segment(self.row_label(i), label_style))
            for j, count in enumerate(row):
                share = count / total
                bg = blend(LOW, GREEN if i == j else RED, share ** 0.6 if count else 0.0)
                fg = Color.from_rgb(240, 240, 240) if count else Color.from_rgb(110, 110, 120)
                style = Style(color=fg, bgcolor=bg)
                if (j, i) == self.cursor and self.has_focus:
                    style += self.get_component_rich_style("confusion-grid--cursor")
                elif (j, i) == self.cursor:
                    style += Style(underline=True, bold=True)
                segments.append(Segment((str(count) if count else "·").rjust(self.cell_w - 1) + " ", style))
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        return strip.adjust_cell_length(width, base).apply_style(base)

    def watch_cursor(self, cursor: tuple[int, int]) -> None:
        x, y = cursor
        self.scroll_to_region(Region(self.label_w + x * self.cell_w, y + 1, self.cell_w, 1), animate=False,
                              immediate=True, spacing=None)
        self.refresh()
        self.post_message(self.CellHighlighted(self, y, x))

    def action_move(self, dx: int, dy: int) -> None:
        n = len(self.classes_)
        if n:
            x, y = self.cursor
            self.cursor = (max(0, min(n - 1, x + dx)), max(0, min(n - 1, y + dy)))

    def action_choose(self) -> None:
        if self.classes_:
            x, y = self.cursor
            self.post_message(self.CellChosen(self, y, x))

    def select(self, true: int, predicted: int) -> None:
        self.cursor = (predicted, true)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
