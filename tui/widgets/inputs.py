"""Inputs that follow the app's blink setting (snapshot tests turn blinking off)."""

from __future__ import annotations

from textual.widgets import Input


class TextField(Input):
    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "blink", True)
