"""The Results screen's images of mistakes: a thumbnail grid whose captions are two lines, the true class and
"→ predicted NN%", each shortened from the middle to the cell, so Oxford's long breed names stay
recognisable in a 15-column cell (`yorksh…terrier` / `→scott…ier 93%`). The screen's detail line under the
grid names the highlighted one in full.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tui.widgets.fitline import Part, shorten_middle
from tui.widgets.grid import Thumb, ThumbnailGrid

CAPTION_LINES = 2


def percent(value) -> str:
    return f"{100 * float(value):.0f}%" if isinstance(value, (int, float)) else "?"


def loss_caption(row: dict) -> str:
    """The full caption (the preview shows it): true → predicted, both probabilities."""
    return (f"true {row.get('true', '?')} → predicted {row.get('predicted', '?')} "
            f"{percent(row.get('prob_predicted'))} (true class {percent(row.get('prob_true'))})")


def caption_lines(row: dict, width: int) -> tuple[str, str]:
    """The two caption lines of a cell `width` characters wide (the cursor mark takes one more)."""
    prob = percent(row.get("prob_predicted"))
    true = shorten_middle(str(row.get("true", "?")), width)
    room = max(1, width - 2 - len(prob))
    predicted = "→" + shorten_middle(str(row.get("predicted", "?")), room) + " " + prob
    return true, predicted[:width]


class LossGrid(ThumbnailGrid):
    """A ThumbnailGrid of report rows (path, true, predicted, prob_predicted …) with two caption lines."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rows: list[dict] = []

    def set_losses(self, rows: list[dict], empty_text: str = "") -> None:
        self.rows = list(rows)
        thumbs = [Thumb(r["path"], loss_caption(r), str(r.get("true", ""))) for r in self.rows]
        self.set_items(thumbs, empty_text)

    @property
    def slot_h(self) -> int:
        return self.cell_h + CAPTION_LINES

    def fit_cells(self) -> None:
        """As wide as the grid allows; never taller than the grid, so one row of images and both caption
        lines are whole even in the 8 lines an 80x24 terminal leaves them."""
        super().fit_cells()
        height = self.scrollable_content_region.height or self.size.height
        if height > CAPTION_LINES:
            self.cell_h = max(2, min(self.cell_h, height - CAPTION_LINES))

    def render_line(self, y: int) -> Strip:
        if not self.items or len(self.rows) != len(self.items):
            return super().render_line(y)
        width = self.scrollable_content_region.width or self.size.width
        row, line = divmod(y + int(self.scroll_y), self.slot_h)
        if line < self.cell_h:
            return self._image_line(row, line, width)
        styles = self.styles_cached
        base = styles["base"]
        segments: list[Segment] = []
        cols = self.columns
        for col in range(cols):
            index = row * cols + col
            if index >= len(self.items):
                break
            selected = index == self.cursor
            text = caption_lines(self.rows[index], self.cell_w - 1)[line - self.cell_h]
            mark = ("▶" if selected else " ") if line == self.cell_h else " "
            if selected:
                style = styles["cursor"] if self.has_focus else styles["caption"] + Style(reverse=True)
            else:
                style = styles["caption"]
            segments.append(Segment((mark + text).ljust(self.cell_w)[: self.cell_w], base + style))
            segments.append(Segment(" ", base))
        return Strip(segments).adjust_cell_length(width, base)


def mistakes_total(report: dict) -> int:
    return sum(c for i, row in enumerate(report["confusion"]) for j, c in enumerate(row) if i != j)


def cell_rows(report: dict, true: int, predicted: int) -> tuple[list[Part], list[dict], str]:
    """What a confusion cell opens: (the images' title, the report rows, what to say when there are none).
    Off the diagonal, the mistakes true → predicted (highest loss first); on it, the right answers of the
    class the model was least sure of."""
    classes = report["classes"]
    t, p = classes[true], classes[predicted]
    count = report["confusion"][true][predicted] if report["confusion"] else 0
    fresh = report["mistakes"] is not None
    listed = report["mistakes"] if fresh else report["top_losses"]
    losses = [r for r in listed if str(r.get("true")) == t and str(r.get("predicted")) == p]
    if true == predicted:
        unsure = [r for r in report["least_confident"] if str(r.get("true")) == t]
        return ([Part(t, shrink=True), Part(f" correctly classified: {count}"),
                 Part(f"; the {len(unsure)} least sure" if unsure else "", optional=True)], unsure,
                "this older report lists wrong predictions only: e evaluates the run again")
    shown = f"{len(losses)} of {count}" if len(losses) < count else str(count)
    source = "highest loss first" if fresh else "from the top losses"
    title = [Part("true "), Part(t, shrink=True), Part(" → predicted "), Part(p, shrink=True),
             Part(f": {shown} image(s), {source}")]
    if count == 0:
        empty = f"no images: no {t} was predicted as {p}"
    elif not fresh:  # only a report written before mistakes were listed lacks them
        empty = "none of these are listed in this older report: e evaluates the run again and lists them all"
    elif len(report["mistakes"]) < mistakes_total(report):
        empty = (f"not among the {len(report['mistakes'])} mistakes the report lists (the worst first); "
                 f"the matrix counts {count}")
    else:
        empty = "none listed in the report (it disagrees with its matrix): e evaluates the run again"
    return title, losses, empty
