"""The row of tabs at the top of every screen: 1-7 switch, the current one highlighted, the job running."""

from __future__ import annotations

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui.widgets.text import middle_truncate

TABS = [
    ("data", "Data"), ("model", "Model"), ("train", "Train"), ("results", "Results"),
    ("attack", "Attack"), ("dream", "Dream"), ("runs", "Runs"),
]


class TabBar(Widget):
    """Tabs as keys: `1 Data  2 Model …`; clicking one switches too. The right side shows a running job."""

    DEFAULT_CSS = """
    TabBar { height: 1; width: 1fr; }
    """

    COMPONENT_CLASSES = {"tabbar--tab", "tabbar--active", "tabbar--key", "tabbar--status", "tabbar--brand"}

    def __init__(self, active: str) -> None:
        super().__init__()
        self.active = active

    def on_mount(self) -> None:
        self.watch(self.app, "job_status", self._job_status_changed, init=False)

    def _job_status_changed(self, _status: str) -> None:
        self.refresh()

    def tabs(self, compact: bool) -> Text:
        """The tabs; compact: the other screens by their number only (room for a job's status at 80 cols)."""
        key_style = self.get_component_rich_style("tabbar--key")
        tab_style = self.get_component_rich_style("tabbar--tab")
        active_style = self.get_component_rich_style("tabbar--active")
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.size.width >= 90 and not compact:
            text.append(" tlbench ", self.get_component_rich_style("tabbar--brand"))
        for i, (mode, title) in enumerate(TABS, 1):
            active = mode == self.active
            style = active_style if active else tab_style
            text.append(" ")
            start = len(text)
            text.append(f"{i}", style if active else key_style + style)
            text.append(f" {title} " if active or not compact else "", style)
            text.stylize(Style(meta={"@click": f"app.switch_mode({mode!r})"}), start, len(text))
        return text

    def render(self) -> Text:
        width = self.size.width
        status = getattr(self.app, "job_status", "")
        text = self.tabs(compact=False)
        if status and text.cell_len + 2 + cell_len(status) > width:
            text = self.tabs(compact=True)  # the job's state matters more than the other tabs' names
        if status:
            room = max(8, width - text.cell_len - 2)
            status = middle_truncate(status, room)
            text.append(" " * max(1, width - text.cell_len - cell_len(status) - 1))
            text.append(status, self.get_component_rich_style("tabbar--status"))
        return text
