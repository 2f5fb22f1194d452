"""Errors shown to a person: a title, the cause and the fix, in a modal the app survives."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.core.errors import (
    ConfigError,
    DatasetError,
    RunError,
    TlbenchError,
    WeightsError,
    explain_unexpected,
)

# Engine messages say what happened first and what to do after; split at the first sentence end that is
# followed by a capital letter or a command in backquotes (so "e.g. 0.2" stays whole).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(])")

DEFAULT_FIX = {
    DatasetError: "Open another folder with o on the Data screen (1), or fix the files and rescan with r.",
    ConfigError: "Correct the value on the Model screen (2); the reason is shown beside the form.",
    WeightsError: "Choose a backbone whose weights are shipped or cached on the Model screen (2).",
    RunError: "Pick another run on the Runs screen (7).",
}

# Engine fixes are worded for the command line; in the workbench the same step is a key.
WORKBENCH_WORDS = {
    "run `tlbench fetch` to download one": "press f on the Data screen (1) to fetch one",
    "or use `tlbench fetch`": "or press f on the Data screen (1) to fetch a dataset",
}


def split_message(message: str) -> tuple[str, str]:
    """(cause, fix) from an engine message 'what happened. What to do.'; fix is '' when there is none."""
    parts = SENTENCE_END.split(message.strip(), maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 else (message.strip(), "")


def describe_error(error: BaseException, title: str | None = None) -> tuple[str, str, str]:
    """(title, cause, fix) for any exception a job or an input raised."""
    if isinstance(error, TlbenchError):
        cause, fix = split_message(error.message)
        for cli, keys in WORKBENCH_WORDS.items():
            fix = fix.replace(cli, keys)
        if not fix:
            fix = next((f for cls, f in DEFAULT_FIX.items() if isinstance(error, cls)), "")
        return title or error.title, cause, fix
    unexpected_title, message = explain_unexpected(error)
    cause, fix = split_message(message)
    if unexpected_title == "Out of memory":  # the workbench's words, not the command-line flags
        fix = "Halve batch_size or lower img_size on the Model screen (2), or pick a smaller backbone."
    return unexpected_title, cause, fix


class ErrorModal(ModalScreen[None]):
    """Title, cause and fix; any of escape, enter or q closes it and the app carries on."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="error.close"),
        Binding("enter", "dismiss", "Close", show=False, id="error.close_enter"),
        Binding("q", "dismiss", "Close", show=False, id="error.close_q"),
    ]

    def __init__(self, title: str, cause: str, fix: str) -> None:
        super().__init__()
        self.error_title, self.cause, self.fix = title, cause, fix

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Static(self.error_title, id="error-title", markup=False)
            yield Static(self.cause, id="error-cause", markup=False)
            if self.fix:
                yield Static("Fix: " + self.fix, id="error-fix", markup=False)
            yield Static("escape close", id="error-keys")

    def action_dismiss(self) -> None:
        self.dismiss(None)
