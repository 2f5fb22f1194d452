"""Every key in one place for people: the help screen (?) and the command palette (ctrl+p).

Both are generated from the Binding declarations, so a key added to a screen shows up in the footer, the
help screen and the palette at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.base_app import workbench_of
from tui.widgets.keybar import KeyBar


def own_bindings(bindings: Iterable[Binding | tuple]) -> list[Binding]:
    """The tlbench bindings of a class (each has an id), skipping Textual's own and tuples."""
    return [b for b in bindings if isinstance(b, Binding) and b.id and b.description]


def key_label(binding: Binding) -> str:
    names = {"question_mark": "?", "space": "space", "enter": "enter", "escape": "escape", "pageup": "pgup",
             "pagedown": "pgdn"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in binding.key.split(","))


def help_sections(app) -> list[tuple[str, str, list[Binding]]]:
    """(title, one-line description, bindings) for the app, each screen and the shared widgets."""
    from tui.widgets.grid import ThumbnailGrid
    from tui.widgets.preview import PreviewScreen

    sections = [("Everywhere", "1-7 switch screens; ctrl+p searches every action; q quits (stops a running job first).",
                 own_bindings(app.BINDINGS))]
    for screen_cls in app.MODES.values():
        sections.append((f"{screen_cls.TITLE}", screen_cls.HELP, own_bindings(screen_cls.BINDINGS)))
        # the keys of a screen's own widgets and dialogs (Results' matrix: d), which a screen's BINDINGS lack
        for title, text, part in getattr(screen_cls, "HELP_PARTS", ()):
            sections.append((f"{screen_cls.TITLE} · {title}", text, own_bindings(part.BINDINGS)))
    sections.append(("Thumbnails", "Arrow keys, page up/down, home/end move; enter previews.",
                     own_bindings(ThumbnailGrid.BINDINGS)))
    sections.append(("Preview", "A large image with its file name, size and label.",
                     own_bindings(PreviewScreen.BINDINGS)))
    return sections


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close")]
    AUTO_FOCUS = "#help-box"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("tlbench — keys", id="help-title")
            for title, text, bindings in help_sections(self.app):
                yield Static(f"[b]{title}[/b]  [dim]{text}[/dim]", classes="help-section")
                rows = "\n".join(f"  [b $accent]{key_label(b):>9}[/]  {b.description}"
                                 + (f" [dim]— {b.tooltip}[/dim]" if b.tooltip else "") for b in bindings)
                yield Static(rows, classes="help-keys")
            yield Static(workbench_of(self).colour_note(), id="help-colour")
        yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)


class KeysProvider(Provider):
    """The palette lists every tlbench action: the screen's it was opened from (with its widgets' keys) first,
    then every other screen's, each of which goes to that screen and runs there."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Awaitable[None]]]]:
        out = []
        seen = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.id or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            node = active.node
            help_text = f"key {key_label(binding)}" + (f" — {binding.tooltip}" if binding.tooltip else "")

            async def run(action=binding.action, node=node) -> None:
                await self.app.run_action(action, node)

            name = f"Go to {binding.description}" if binding.action.startswith("switch_mode") else binding.description
            out.append((name, help_text, run))
        here = type(self.screen)
        for mode, screen_cls in getattr(self.app, "MODES", {}).items():
            if screen_cls is here:
                continue
            for binding in own_bindings(screen_cls.BINDINGS):
                if binding.show is False and not binding.tooltip:
                    continue  # movement keys and the like: nothing to search for
                help_text = (f"{screen_cls.TITLE} screen, key {key_label(binding)}"
                             + (f" — {binding.tooltip}" if binding.tooltip else ""))
                out.append((f"{screen_cls.TITLE}: {binding.description}", help_text, self._elsewhere(mode, binding)))
        return out

    def _elsewhere(self, mode: str, binding: Binding) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await self.app.switch_mode(mode)
            await self.app.run_action(binding.action, self.app.screen)

        return run

    async def discover(self) -> Hits:
        for name, help_text, run in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, run in self._commands():
            score = max(matcher.match(name), matcher.match(help_text) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
