"""Asking for a dataset folder (Tab completes folder names) or, for fetching, a dataset name (Tab or Enter
takes the suggested name)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui.widgets.inputs import ChoiceSuggester, PathSuggester, TextField


class AskScreen(ModalScreen[str | None]):
    """One line of input; enter gives it back (a shown suggestion taken), escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask.cancel")]
    AUTO_FOCUS = "#ask-input"

    def __init__(self, title: str, hint: str, value: str = "", choices: list[str] | None = None) -> None:
        super().__init__()
        self.title_text, self.hint, self.value = title, hint, value
        self.suggester = ChoiceSuggester(choices) if choices else PathSuggester(folders_only=True)

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
