"""The whole confusion matrix on one screen (o on Results): a heat map of every cell, two matrix rows per
terminal line (the upper half block ▀ takes one row's colour, its background the next row's), so a 37x37
matrix needs 19 lines and fits 80x24. Each cell's shade is its share of its row (green on the diagonal, red
off it), as on the Results grid; the cursor cell is yellow and the line under the map names it. Enter opens
the cell's images on Results (the mistakes true → predicted, or the least sure right answers on the diagonal).
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from tui.results.confusion import GREEN, LOW, RED, blend
from tui.results.losses import percent
from tui.widgets.fitline import FitLine, Part
from tui.widgets.keybar import KeyBar

CURSOR = Color.from_rgb(250, 210, 40)
EMPTY = Color.from_rgb(28, 28, 34)  # below the last row of an odd-sized matrix
TICK = 5  # a column number every TICK columns


class MatrixMap(Widget, can_focus=True):
    """The heat map; `cursor` is (true row, predicted column)."""

    BINDINGS = [
        Binding("up", "move(-1, 0)", "Up", show=False, id="overview.up"),
        Binding("down", "move(1, 0)", "Down", show=False, id="overview.down"),
        Binding("left", "move(0, -1)", "Left", show=False, id="overview.left"),
        Binding("right", "move(0, 1)", "Right", show=False, id="overview.right"),
        Binding("d", "diagonal", "Diagonal", show=False, id="overview.diagonal"),
    ]
    DEFAULT_CSS = "MatrixMap { height: 1fr; }"

    cursor: reactive[tuple[int, int]] = reactive((0, 0), init=False)

    class Moved(Message):
        def __init__(self, true: int, predicted: int) -> None:
            super().__init__()
            self.true, self.predicted = true, predicted

    def __init__(self, matrix: list[list[int]], cursor: tuple[int, int] = (0, 0), **kwargs) -> None:
        super().__init__(**kwargs)
        self.matrix = matrix
        self.totals = [sum(row) for row in matrix]
        # each cell's shade once, and each drawn line kept: the cursor's move redraws the map, and a burst of
        # arrow keys over SSH would otherwise blend every cell again for every key
        self.shades = [[self._shade(i, j) for j in range(self.n)] for i in range(self.n)]
        self._lines: dict[tuple, Strip] = {}
        self.set_reactive(MatrixMap.cursor, cursor)

    @property
    def n(self) -> int:
        return len(self.matrix)

    @property
    def gutter(self) -> int:
        return len(str(max(0, self.n - 1))) + 1

    @property
    def cell_w(self) -> int:
        """1 to 3 characters a column: as square as the room allows (a character is about twice as tall)."""
        return max(1, min(3, ((self.size.width or 80) - self.gutter) // max(1, self.n)))

    def _shade(self, i: int, j: int) -> Color:
        count, total = self.matrix[i][j], self.totals[i]
        share = count / total if total else 0.0
        return blend(LOW, GREEN if i == j else RED, share ** 0.6 if count else 0.0)

    def colour(self, i: int, j: int) -> Color:
        if i >= self.n:
            return EMPTY
        if (i, j) == self.cursor:
            return CURSOR
        return self.shades[i][j]

    def render_line(self, y: int) -> Strip:
        width, base = self.size.width, self.rich_style
        # a line depends on the cursor only when the cursor's row is on it (or it is the header)
        on_line = y == 0 or self.cursor[0] in (2 * (y - 1), 2 * (y - 1) + 1)
        key = (y, width, base, self.cursor if on_line else None)
        if key not in self._lines:
            if len(self._lines) > 512:
                self._lines.clear()
            self._lines[key] = self._render_line(y, width, base)
        return self._lines[key]

    def _render_line(self, y: int, width: int, base: Style) -> Strip:
        muted = base + Style(dim=True)
        cw, gutter = self.cell_w, self.gutter
        if y == 0:  # column numbers every TICK columns, the cursor's column marked
            line = [" "] * (gutter + self.n * cw)
            for j in range(0, self.n, TICK):
                for k, ch in enumerate(str(j)):
                    if gutter + j * cw + k < len(line):
                        line[gutter + j * cw + k] = ch
            segments = [Segment("".join(line), muted)]
            return Strip(segments).crop(0, width).adjust_cell_length(width, base)
        top = 2 * (y - 1)
        if top >= self.n:
            return Strip.blank(width, base)
        lit = self.cursor[0] in (top, top + 1)
        label = str(top).rjust(gutter - 1) + " "
        segments = [Segment(label, base + Style(bold=True) if lit else muted)]
        for j in range(self.n):
            style = Style(color=self.colour(top, j), bgcolor=self.colour(top + 1, j))
            segments.append(Segment("▀" * cw, style))
        return Strip(segments).crop(0, width).adjust_cell_length(width, base)

    def watch_cursor(self, cursor: tuple[int, int]) -> None:
        self.refresh()
        self.post_message(self.Moved(*cursor))

    def action_move(self, di: int, dj: int) -> None:
        if self.n:
            i, j = self.cursor
            self.cursor = (max(0, min(self.n - 1, i + di)), max(0, min(self.n - 1, j + dj)))

    def action_diagonal(self) -> None:
        self.cursor = (self.cursor[0], self.cursor[0])


class MatrixOverview(Screen[tuple[int, int] | None]):
    """Dismissed with (true, predicted) of the chosen cell, or None (escape)."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="overview.back"),
        Binding("enter", "choose", "Images", id="overview.choose", tooltip="The cell's images, on Results"),
        Binding("o", "close", "Back", show=False, id="overview.close"),
    ]
    DEFAULT_CSS = """
    MatrixOverview #overview-title { height: 1; background: $panel; }
    MatrixOverview #overview-cell { height: 1; }
    """

    def __init__(self, classes: list[str], matrix: list[list[int]], cursor: tuple[int, int] = (0, 0),
                 run: str = "") -> None:
        super().__init__()
        self.class_names, self.matrix, self.start, self.run = classes, matrix, cursor, run

    def compose(self) -> ComposeResult:
        n = len(self.class_names)
        yield FitLine(Part(f"whole matrix {n}x{n}", "bold"), Part(" · rows true, columns predicted"),
                      Part(" · shade: share of the row", optional=True), " · ",
                      Part(self.run, shrink=True, least=8, tail=0.6), id="overview-title")
        yield MatrixMap(self.matrix, self.start, id="overview-map")
        yield FitLine("", id="overview-cell")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(MatrixMap).focus()
        self.describe(*self.start)

    def on_matrix_map_moved(self, message: MatrixMap.Moved) -> None:
        self.describe(message.true, message.predicted)

    def describe(self, true: int, predicted: int) -> None:
        row = self.matrix[true] if true < len(self.matrix) else []
        count, total = (row[predicted], sum(row)) if predicted < len(row) else (0, 0)
        share = f" ({percent(count / total)} of the row)" if total else ""
        self.query_one("#overview-cell", FitLine).set_parts(
            Part(f"{true}:{predicted} "), Part("true "), Part(self.class_names[true], "bold", shrink=True, least=7),
            Part(" → "), Part(self.class_names[predicted], "bold", shrink=True, least=7), Part(f": {count}"),
            Part(share, optional=True), Part(" · enter images", optional=True))

    def action_choose(self) -> None:
        self.dismiss(self.query_one(MatrixMap).cursor)

    def action_close(self) -> None:
        self.dismiss(None)
