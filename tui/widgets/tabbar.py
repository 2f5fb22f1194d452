"""The row of tabs at the top of every screen: 1-7 switch, the current one highlighted, the job running."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

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
        self.watch(self.app, "job_status", lambda _: self.refresh(), init=False)

    def render(self) -> Text:
        key_style = self.get_component_rich_style("tabbar--key")
        tab_style = self.get_component_rich_style("tabbar--tab")
        active_style = self.get_component_rich_style("tabbar--active")
        text = Text(no_wrap=True, overflow="ellipsis")
        width = self.size.width
        if width >= 90:
            text.append(" tlbench ", self.get_component_rich_style("tabbar--brand"))
        for i, (mode, title) in enumerate(TABS, 1):
            style = active_style if mode == self.active else tab_style
            text.append(" ")
            start = len(text)
            text.append(f"{i}", key_style + style if mode != self.active else style)
            text.append(f" {title} ", style)
            text.stylize(Style(meta={"@click": f"app.switch_mode({mode!r})"}), start, len(text))
        status = getattr(self.app, "job_status", "")
        if status:
            gap = width - text.cell_len - len(status) - 1
            text.append(" " * max(1, gap))
            text.append(status, self.get_component_rich_style("tabbar--status"))
        return text
