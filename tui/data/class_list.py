"""The Data screen's class list: each class with its image count, a bar when there is room, and its train and val
counts; sorted by name or count (s), / jumps to a class as you type. Long names give way from the middle, the
counts always show. The screen hears the DataTable's own RowHighlighted and RowSelected (keyed by label)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from engine.data.layouts import DatasetInfo
from tui.widgets.inputs import ChoiceSuggester, TextField
from tui.widgets.text import middle_truncate

BAR_WIDTH = 8
# Cells the class list needs besides the names: images, train, val (+ the bar when wide), each column padded
# by one cell on both sides, and the scrollbar.
COUNT_COLUMNS_W = 8 + 5 + 4 + 3 * 2
BAR_COLUMN_W = BAR_WIDTH + 2
NAME_MIN_W, SCROLLBAR_W = 10, 1
SORTS = ("name", "count")
BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(value: int, top: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a cell."""
    eighths = round(width * 8 * value / top) if top else 0
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


class ClassList(Vertical):
    """The jump field over the table #classes; `show` fills it for a dataset and its split."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info: DatasetInfo | None = None
        self.split: dict = {}
        self.sort = "name"
        self.name_width = 0
        self.wide = False  # the bar column shows
        self.order: list[int] = []  # class labels in the order the list shows them

    def compose(self) -> ComposeResult:
        yield TextField(placeholder="class name", id="class-jump", classes="hidden", compact=True)
        yield DataTable(id="classes", cursor_type="row", zebra_stripes=False)

    @property
    def table(self) -> DataTable:
        return self.query_one("#classes", DataTable)

    def show_dataset(self, info: DatasetInfo) -> None:
        self.info = info
        self.query_one("#class-jump", TextField).suggester = ChoiceSuggester(info.classes)
        self.order = []

    def show_split(self, split: dict) -> None:
        self.split = split
        self.fit()
        self.fill()

    def first(self) -> int | None:
        """The cursor on the first row; its class's label (None for a dataset without classes)."""
        if self.info is None or not self.info.classes:
            return None
        self.table.move_cursor(row=0)
        return self.order[0]

    def fit(self) -> bool:
        """Size the list so its counts always show: names give way (middle-truncated), up to about half the
        screen; the bar column only when there is room. True when the name width changed."""
        if self.info is None:
            return False
        width = self.screen.size.width or 80
        longest = max((len(c) for c in self.info.classes), default=5)
        wide = width >= 100
        others = COUNT_COLUMNS_W + (BAR_COLUMN_W if wide else 0) + 2 + SCROLLBAR_W  # +2: the name's padding
        room = max(NAME_MIN_W + others, int(width * 0.55))
        name_w = max(NAME_MIN_W, min(max(longest, 5), room - others))
        self.styles.width = name_w + others
        changed = (name_w, wide) != (self.name_width, self.wide)
        self.name_width, self.wide = name_w, wide
        return changed

    def sorted_labels(self) -> list[int]:
        info = self.info
        assert info is not None
        labels = list(range(len(info.classes)))
        if self.sort == "count":
            counts = info.counts()
            return sorted(labels, key=lambda i: (-counts[i], info.classes[i].casefold()))
        return sorted(labels, key=lambda i: (info.classes[i].casefold(), info.classes[i]))

    def fill(self) -> None:
        """(Re)build the rows: the order, the truncation and the split counts all live here."""
        info, split = self.info, self.split
        assert info is not None
        counts = info.counts()
        top = max(counts, default=0)
        table = self.table
        current = self.order[table.cursor_row] if self.order and table.cursor_row < len(self.order) else None
        table.clear(columns=True)
        arrow = {"name": "class ↓", "count": "images ↓"}
        table.add_column(arrow["name"] if self.sort == "name" else "class", key="class", width=self.name_width)
        table.add_column(arrow["count"] if self.sort == "count" else "images", key="images", width=8)
        if self.wide:
            table.add_column("", key="bar")
        table.add_column("train", key="train", width=5)
        table.add_column("val", key="val", width=4)
        self.order = self.sorted_labels()
        for i in self.order:
            name, count = info.classes[i], counts[i]
            tr = str(split["train"][i]) if "train" in split else "-"
            va = str(split["val"][i]) if "val" in split else "-"
            cells = [middle_truncate(name, self.name_width), Text(str(count), justify="right")]
            if self.wide:
                cells.append(Text(bar(count, top), style="cyan"))
            cells += [Text(tr, justify="right"), Text(va, justify="right")]
            table.add_row(*cells, key=str(i))
        if self.order:
            row = self.order.index(current) if current in self.order else 0
            table.move_cursor(row=row)

    def next_sort(self) -> None:
        """By name, then by image count; the sorted column's header carries the arrow."""
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.fill()

    # ------------------------------------------------------------------------------------ jumping

    @property
    def jumping(self) -> bool:
        return self.screen.focused is self.query_one("#class-jump")

    def open_jump(self) -> None:
        """/: a one-line field over the list; the cursor follows what is typed."""
        field = self.query_one("#class-jump", TextField)
        field.value = ""
        field.remove_class("hidden")
        field.focus()

    def close_jump(self) -> None:
        self.query_one("#class-jump", TextField).add_class("hidden")
        self.table.focus()

    @on(Input.Changed, "#class-jump")
    def jump_typed(self, event: Input.Changed) -> None:
        event.stop()
        info = self.info
        text = event.value.strip().casefold()
        if info is None or not text:
            return
        names = [info.classes[i].casefold() for i in self.order]
        row = next((r for r, n in enumerate(names) if n.startswith(text)), None)
        if row is None:
            row = next((r for r, n in enumerate(names) if text in n), None)
        if row is not None:
            self.table.move_cursor(row=row)

    @on(Input.Submitted, "#class-jump")
    def jump_done(self, event: Input.Submitted) -> None:
        self.jump_typed(Input.Changed(event.input, event.value))
        self.close_jump()
