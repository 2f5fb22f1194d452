"""The key bar at the bottom of every screen: the keys that work here and what they do, in one line.

Textual's Footer rebuilds a widget per key whenever the bindings change — on every screen switch, which
costs tens of milliseconds per key press. This renders the same information as one line of text; clicking
a key presses it.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar { height: 1; dock: bottom; background: $footer-background; }
    KeyBar > .keybar--key { color: $footer-key-foreground; text-style: bold; }
    KeyBar > .keybar--description { color: $footer-description-foreground; }
    KeyBar > .keybar--disabled { color: $text-disabled; }
    """

    COMPONENT_CLASSES = {"keybar--key", "keybar--description", "keybar--disabled"}

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh())

    def entries(self, app_keys_only: bool = False) -> list[tuple[str, str, str, bool]]:
        """(keys shown, description, key to press, enabled) in the order Textual resolves bindings;
        app_keys_only: the app's own keys (?, q, ^p) without their descriptions, to leave room."""
        seen: dict[str, int] = {}
        out: list[list] = []
        group_at: dict[object, int] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            display = self.app.get_key_display(binding)
            if binding.group is not None and binding.group in group_at:
                out[group_at[binding.group]][0] += display
                continue
            seen[binding.action] = len(out)
            description = binding.group.description if binding.group is not None else binding.description
            if app_keys_only and active.node is self.app:
                description = ""
            if binding.group is not None:
                group_at[binding.group] = len(out)
            out.append([display, description, binding.key, active.enabled])
        return [tuple(e) for e in out]  # type: ignore[misc]

    def render(self) -> Text:
        width = self.size.width
        text = self.line(self.entries())
        if text.cell_len <= width:
            return text
        # 80 columns: the app's keys (?, q, ^p) lose their words first, then the screen's keys theirs, the last
        # first; every key stays on the line (cropping cut "q ^p" off the Runs screen's bar, issue 24)
        entries = self.entries(app_keys_only=True)
        for i in range(len(entries) - 1, -1, -1):
            text = self.line(entries)
            if text.cell_len <= width:
                break
            keys, description, key, enabled = entries[i]
            if description:
                entries[i] = (keys, "", key, enabled)
        return self.line(entries)

    def line(self, entries: list[tuple[str, str, str, bool]]) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        text_style = self.get_component_rich_style("keybar--description")
        disabled = self.get_component_rich_style("keybar--disabled")
        text = Text(no_wrap=True, overflow="crop")
        for i, (keys, description, key, enabled) in enumerate(entries):
            click = Style(meta={"@click": f"app.simulate_key({key.split(',')[0]!r})"})
            if i:
                text.append(" ")
            text.append(keys, (key_style if enabled else disabled) + click)
            if description:
                text.append(" " + description, (text_style if enabled else disabled) + click)
        return text
