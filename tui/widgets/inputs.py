"""Text entry that behaves as people expect over a slow link: Tab completes, Enter takes the suggestion.

Use `TextField` for every text field in the workbench (it also follows the app's blink setting, which the
snapshot tests turn off). Give it a suggester to get completion:

    TextField(placeholder="class", id="attack-target", suggester=ChoiceSuggester(classes))
    field.suggester = ChoiceSuggester(classes)          # or later, when the classes are known
    TextField(path, suggester=PathSuggester(folders_only=True))

What a person gets in a field with a suggester (the grey text after the cursor is the suggestion):

- Tab accepts the suggestion when the cursor is at the end and there is one (as → does); otherwise Tab moves
  to the next field as usual. When the text starts several answers, Tab completes as far as they agree and
  lists them in a notification (as a shell does), rather than taking the first. The suggestion is computed at that moment, so "ca<Tab>" typed in one burst
  completes even before the grey text was drawn.
- Enter accepts the suggestion, then submits: `Input.Submitted.value` (and `field.value`) is the suggestion,
  not the typed prefix ("ca" + Enter submits "cat"). A value that is already a whole answer is kept:
  an exact choice of a `ChoiceSuggester` or a plain Textual `SuggestFromList` (any case, unless the list
  is case-sensitive: "CAT" becomes the list's "cat"), an existing path for `PathSuggester`.
  `TextField(enter_accepts_suggestion=False)` keeps the typed text on Enter.
- Without a suggester a TextField is a plain Input (Tab moves focus, Enter submits what was typed).

Keys typed in a burst are delivered in order, each to the widget that was focused when it was processed:
the app holds the next key until the previous one was fully handled (see TlbenchApp in tui/app.py), so
"Tab 0.002" lands in the field Tab moved to.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.actions import SkipAction
from textual.binding import Binding
from textual.suggester import Suggester, SuggestFromList
from textual.widgets import Input


async def suggest_now(suggester: Suggester | None, value: str) -> str | None:
    """The suggestion for `value`, computed now (Input asks its suggester on a worker, which may lag)."""
    if suggester is None or not value:
        return None
    return await suggester.get_suggestion(value if suggester.case_sensitive else value.casefold())


def canonical_choice(suggester: Suggester | None, value: str) -> str | None:
    """The list item `value` names exactly (any case, unless the list is case-sensitive), in the list's
    own spelling; None when it names none or the suggester is not a list."""
    if not isinstance(suggester, SuggestFromList):
        return None
    folded = value if suggester.case_sensitive else value.casefold()
    for original, compared in zip(suggester._suggestions, suggester._for_comparison):
        if compared == folded:
            return original
    return None


def is_complete(suggester: Suggester | None, value: str) -> bool:
    """True when `value` is already a whole answer for this suggester (Enter keeps it as typed)."""
    check = getattr(suggester, "is_complete", None)
    if check is not None:
        return bool(check(value))
    if isinstance(suggester, SuggestFromList):
        folded = value if suggester.case_sensitive else value.casefold()
        return folded in suggester._for_comparison
    return False


def all_matches(suggester: Suggester | None, value: str) -> list[str]:
    """Every completion of `value` (whole values, in the suggester's order); [] when it cannot list them."""
    listed = getattr(suggester, "matches", None)
    if listed is not None:
        return list(listed(value))
    if isinstance(suggester, SuggestFromList) and value:
        folded = value if suggester.case_sensitive else value.casefold()
        return [o for o, c in zip(suggester._suggestions, suggester._for_comparison) if c.startswith(folded)]
    return []


def common_prefix(values: list[str], case_sensitive: bool) -> str:
    """The longest start all `values` share (compared folded unless case-sensitive), in the first's spelling."""
    if not values:
        return ""
    first = values[0]
    compared = values if case_sensitive else [v.casefold() for v in values]
    n = len(os.path.commonprefix(compared))
    return first[:n]


class ChoiceSuggester(SuggestFromList):
    """Completes to one of `choices` (class names): case-insensitive, an exact choice preferred over a
    longer one that starts with it ("cat" stays "cat" although "caterpillar" comes first)."""

    def __init__(self, choices, *, case_sensitive: bool = False) -> None:
        super().__init__(choices, case_sensitive=case_sensitive)

    def canonical(self, value: str) -> str | None:
        """The choice `value` names exactly (in the choice's own case), or None."""
        return canonical_choice(self, value)

    def is_complete(self, value: str) -> bool:
        return self.canonical(value) is not None

    async def get_suggestion(self, value: str) -> str | None:
        exact = self.canonical(value)
        return exact if exact is not None else await super().get_suggestion(value)


class PathSuggester(Suggester):
    """Completes the last component of a path (~ expanded) with the first matching entry, sorted by name;
    an existing folder typed without its trailing separator is completed with it, so Tab steps inside.
    Hidden entries are offered only once a '.' is typed."""

    def __init__(self, *, folders_only: bool = False) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.folders_only = folders_only

    def is_complete(self, value: str) -> bool:
        path = Path(os.path.expanduser(value.strip()))
        return bool(value.strip()) and (path.is_dir() if self.folders_only else path.exists())

    async def get_suggestion(self, value: str) -> str | None:
        path = Path(os.path.expanduser(value))
        if not value.endswith(os.sep) and path.is_dir() and path.name not in ("", ".", ".."):
            return value + os.sep
        parent, prefix = (path, "") if value.endswith(os.sep) else (path.parent, path.name)
        try:
            entries = sorted((e.name, e.is_dir()) for e in os.scandir(parent)
                             if (e.is_dir() or not self.folders_only) and (prefix or not e.name.startswith(".")))
        except OSError:
            return None
        for name, is_dir in entries:
            if name.startswith(prefix) and name != prefix:
                return value + name[len(prefix):] + (os.sep if is_dir else "")
        return None

    def matches(self, value: str) -> list[str]:
        """Every entry the last component of `value` could complete to, as whole values."""
        if not value or value.endswith(os.sep):
            return []
        path = Path(os.path.expanduser(value))
        prefix = path.name
        try:
            entries = sorted((e.name, e.is_dir()) for e in os.scandir(path.parent)
                             if (e.is_dir() or not self.folders_only) and (prefix or not e.name.startswith(".")))
        except OSError:
            return []
        return [value + name[len(prefix):] + (os.sep if is_dir else "") for name, is_dir in entries
                if name.startswith(prefix) and name != prefix]


MATCHES_SHOWN = 8  # an ambiguous Tab lists this many of the matches


class TextField(Input):
    """An Input with Tab completion and Enter-accepts-the-suggestion (see the module docstring)."""

    BINDINGS = [Binding("tab", "complete", "Complete", show=False, id="field.complete")]

    def __init__(self, value: str | None = None, placeholder: str = "", *, suggester: Suggester | None = None,
                 enter_accepts_suggestion: bool = True, **kwargs) -> None:
        super().__init__(value, placeholder, suggester=suggester, **kwargs)
        self.enter_accepts_suggestion = enter_accepts_suggestion

    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "blink", True)

    async def suggestion(self) -> str | None:
        """The suggestion that would complete the current value (None when there is nothing to add)."""
        value = self.value
        shown = self._suggestion
        suggestion = shown if shown and len(shown) > len(value) else await suggest_now(self.suggester, value)
        if suggestion is None or suggestion == value:
            return None
        return suggestion

    async def accept_suggestion(self, *, at_end_only: bool = True) -> bool:
        """Replace the value with its suggestion (cursor at the end); False when there is none (or, with
        at_end_only, when the cursor is not at the end: Tab mid-text is not a completion)."""
        if at_end_only and not self.cursor_at_end:
            return False
        suggestion = await self.suggestion()
        if suggestion is None:
            return False
        self.value = suggestion
        self.cursor_position = len(suggestion)
        return True

    async def action_complete(self) -> None:
        """Tab: complete; with nothing to complete, let the screen move focus (SkipAction). When the typed
        text starts several answers, complete as far as they agree and list them (as a shell does), instead
        of taking the first one silently."""
        if self.suggester is None:
            raise SkipAction()
        if self.cursor_at_end and not is_complete(self.suggester, self.value):
            found = all_matches(self.suggester, self.value)
            if len(found) > 1:
                shared = common_prefix(found, self.suggester.case_sensitive)
                if len(shared) > len(self.value):
                    self.value = shared
                    self.cursor_position = len(shared)
                names = [os.path.basename(f.rstrip(os.sep)) + (os.sep if f.endswith(os.sep) else "")
                         if isinstance(self.suggester, PathSuggester) else f for f in found]
                shown = ", ".join(names[:MATCHES_SHOWN]) + (f" … ({len(names)} in all)"
                                                            if len(names) > MATCHES_SHOWN else "")
                self.notify(f"{len(found)} matches: {shown}", title="Tab", timeout=4)
                return
        if not await self.accept_suggestion():
            raise SkipAction()

    async def action_submit(self) -> None:
        """Enter: take the suggestion unless the typed value is a whole answer already, then submit."""
        if self.enter_accepts_suggestion and self.suggester is not None and self.value:
            exact = canonical_choice(self.suggester, self.value)
            if exact is not None:
                self.value = exact
            elif not is_complete(self.suggester, self.value):
                await self.accept_suggestion(at_end_only=False)
        await super().action_submit()
