"""The Results screen's per-class table: precision, recall, F1 and support of each class, sortable (s cycles the
order, the sorted column's header says so with ▲), worst first, so the weak classes of a 37-class run are at
the top instead of somewhere in alphabetical order. Names are shortened from the middle (37 Oxford breeds
must fit beside the matrix at 80 columns).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.widgets.fitline import shorten_middle
from tui.widgets.tables import refill

# (what the header and the notification call it, the report key, the column it sorts); None: the report's order
SORTS: tuple[tuple[str, str | None, int], ...] = (
    ("class order", None, 0), ("F1, worst first", "f1", 3), ("recall, worst first", "recall", 2),
    ("precision, worst first", "precision", 1), ("fewest images first", "support", 4))
COLUMNS = ("class", "prec", "recall", "F1", "n")
WORST = 1  # the index of the F1 order: the "worst classes" view


def fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def number(value, digits: int) -> Text:
    return Text(fmt(value, digits), justify="right")


def sorted_order(per_class: list[dict], key: str | None) -> list[int]:
    """The rows' order: the report's, or ascending by `key` (worst first); a class without the number (never
    predicted: no precision, so no F1) counts as the worst; ties keep the report's order."""
    order = list(range(len(per_class)))
    if key is None:
        return order

    def value(i: int) -> float:
        v = per_class[i].get(key)
        return float(v) if isinstance(v, (int, float)) else float("-inf")

    return sorted(order, key=lambda i: (value(i), i))


class PerClassTable(DataTable):
    """The table; `order[row]` is the class (its index in the report) shown on that row."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.sort_index = 0
        self.order: list[int] = []
        self.per_class: list[dict] = []
        self.wide = False

    @property
    def sort_name(self) -> str:
        return SORTS[self.sort_index][0]

    def show(self, per_class: list[dict], wide: bool) -> None:
        self.per_class, self.wide = list(per_class), wide
        self.fill()

    def sort_by(self, index: int) -> None:
        self.sort_index = index % len(SORTS)
        self.fill()
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def cycle_sort(self) -> None:
        self.sort_by(self.sort_index + 1)

    def fill(self) -> None:
        _, key, column = SORTS[self.sort_index]
        name_w, digits = (24, 3) if self.wide else (13, 2)
        self.order = sorted_order(self.per_class, key)
        labels = [c + ("▲" if key is not None and k == column else "") for k, c in enumerate(COLUMNS)]
        rows = []
        for i in self.order:
            row = self.per_class[i]
            rows.append((shorten_middle(str(row.get("class", "?")), name_w), number(row.get("precision"), digits),
                         number(row.get("recall"), digits), number(row.get("f1"), digits),
                         Text(str(row.get("support", "-")), justify="right")))
        refill(self, labels, rows)

    def class_at(self, row: int) -> int | None:
        return self.order[row] if 0 <= row < len(self.order) else None

    def worst(self, count: int = 3) -> list[str]:
        """The names of the `count` classes with the lowest F1."""
        return [str(self.per_class[i].get("class")) for i in sorted_order(self.per_class, "f1")[:count]]
