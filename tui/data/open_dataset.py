"""Asking for a dataset folder (with completion of folder names) and, when fetching exists, a dataset name."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester, SuggestFromList
from textual.widgets import Input, Static

from tui.widgets.inputs import TextField


class FolderSuggester(Suggester):
    """Completes the last path component with the first matching sub-folder."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        path = Path(os.path.expanduser(value))
        parent, prefix = (path, "") if value.endswith(os.sep) else (path.parent, path.name)
        try:
            names = sorted(e.name for e in os.scandir(parent) if e.is_dir() and not e.name.startswith("."))
        except OSError:
            return None
        for name in names:
            if name.startswith(prefix) and name != prefix:
                return value + name[len(prefix):] + os.sep
        return None


class AskScreen(ModalScreen[str | None]):
    """One line of input; enter gives it back, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask.cancel")]
    AUTO_FOCUS = "#ask-input"

    def __init__(self, title: str, hint: str, value: str = "", choices: list[str] | None = None) -> None:
        super().__init__()
        self.title_text, self.hint, self.value = title, hint, value
        self.suggester = SuggestFromList(choices, case_sensitive=False) if choices else FolderSuggester()

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box"):
            yield Static(self.title_text, id="ask-title", markup=False)
            yield TextField(self.value, id="ask-input", suggester=self.suggester)
            yield Static(self.hint, id="ask-hint", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
