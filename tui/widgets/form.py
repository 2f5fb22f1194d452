"""A form built from field descriptions (TrainConfig's dataclass fields): fields added later appear by
themselves. The widget parses what is typed; the screen validates it against the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from engine.core.checks import parse_number
from tui.widgets.inputs import TextField


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # "int" | "float" | "str" | "bool"
    optional: bool
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()  # the training modes it applies to; () for every mode

    def applies_to(self, mode: str) -> bool:
        return not self.modes or mode in self.modes

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def parse_value(spec: FieldSpec, text: str) -> Any:
    """The typed value of `text`; raises ValueError with a message naming the field."""
    text = text.strip()
    if text == "" or text.lower() == "none":
        if spec.optional:
            return None
        if spec.kind == "str":
            return ""
        raise ValueError(f"{spec.flag} needs a value ({spec.help}).")
    if spec.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{spec.flag} {text!r} is not a whole number.") from None
    if spec.kind == "float":
        try:  # 4/255 reads naturally for pixel-scale values: the CLI's parser takes it too
            return parse_number(text)
        except ValueError:
            raise ValueError(f"{spec.flag} {text!r} is not a number (e.g. 1e-3).") from None
    return text


def show_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class ConfigForm(VerticalScroll):
    """One row per field: name, value, help. Posts Changed with the parsed values and parse errors, and
    Scrolled when what is out of view changes (the screen shows a "more below" hint)."""

    class Changed(Message):
        def __init__(self, form: ConfigForm, values: dict[str, Any], errors: dict[str, str], name: str) -> None:
            super().__init__()
            self.form, self.values, self.errors, self.name = form, values, errors, name

        def can_replace(self, message: Message) -> bool:
            # each Changed carries every field's value: a newer one from the same form makes an older one
            # waiting in the queue redundant (mounting the form changes every field at once)
            return isinstance(message, ConfigForm.Changed) and message.form is self.form

    class Scrolled(Message):
        def __init__(self, form: ConfigForm) -> None:
            super().__init__()
            self.form = form

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ConfigForm.Scrolled)

    def __init__(self, specs: list[FieldSpec], values: dict[str, Any], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.specs = specs
        self.initial = values

    def compose(self) -> ComposeResult:
        for spec in self.specs:
            value = self.initial.get(spec.name, spec.default)
            with Horizontal(classes="form-row", id=f"row-{spec.name}"):
                yield Label(spec.name, classes="form-label")
                if spec.kind == "bool":
                    yield Checkbox("", bool(value), id=f"field-{spec.name}", classes="form-value", compact=True)
                elif spec.choices:
                    options = [(c, c) for c in spec.choices]
                    current = value if value in spec.choices else spec.choices[0]
                    yield Select(options, value=current, allow_blank=False, id=f"field-{spec.name}",
                                 classes="form-value", compact=True)
                else:
                    placeholder = "default" if spec.optional else ""
                    yield TextField(show_value(value), placeholder=placeholder, id=f"field-{spec.name}",
                                    classes="form-value", compact=True)
                yield Static(spec.help, classes="form-help", markup=False)

    def read(self) -> tuple[dict[str, Any], dict[str, str]]:
        values, errors = {}, {}
        for spec in self.specs:
            widget = self.query_one(f"#field-{spec.name}")
            if isinstance(widget, Checkbox):
                values[spec.name] = bool(widget.value)
            elif isinstance(widget, Select):
                values[spec.name] = widget.value
            elif isinstance(widget, Input):
                try:
                    values[spec.name] = parse_value(spec, widget.value)
                except ValueError as err:
                    errors[spec.name] = str(err)
        return values, errors

    def set_value(self, name: str, value: Any) -> None:
        widget = self.query_one(f"#field-{name}")
        if isinstance(widget, Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, Select):
            widget.value = value
        elif isinstance(widget, Input):
            widget.value = show_value(value)

    def show_for_mode(self, mode: str, hide: tuple[str, ...] = (), first: tuple[str, ...] = ()) -> list[str]:
        """Hide the rows that do not apply to `mode` and those in `hide` (their values are kept); put the rows
        in `first` right after the mode's own (auto's budget first), the others in their order. Returns the
        hidden names."""
        hidden = []
        for spec in self.specs:
            row = self.query_one(f"#row-{spec.name}")
            row.display = spec.applies_to(mode) and spec.name not in hide
            if not row.display:
                hidden.append(spec.name)
        names = [s.name for s in self.specs]
        lead = names[: names.index("mode") + 1] if "mode" in names else []
        order = lead + [n for n in first if n in names] + [n for n in names if n not in lead and n not in first]
        rows = [self.query_one(f"#row-{n}") for n in order]
        if list(self.query(".form-row")) != rows:
            for before, row in zip(rows, rows[1:]):
                self.move_child(row, after=before)
        self.call_after_refresh(self.post_message, self.Scrolled(self))
        return hidden

    def out_of_view(self) -> tuple[int, int]:
        """(rows above, rows below) the visible part of the form."""
        top, bottom = self.scroll_y, self.scroll_y + self.scrollable_content_region.height
        above = below = 0
        for row in self.query(".form-row"):
            if not row.display:
                continue
            y0 = row.virtual_region.y
            y1 = y0 + max(1, row.virtual_region.height)
            if y1 <= top:
                above += 1
            elif y0 >= bottom:
                below += 1
        return above, below

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.post_message(self.Scrolled(self))

    def on_resize(self) -> None:
        self.post_message(self.Scrolled(self))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """The focused setting's row gets -focused (the stylesheet shows its whole help at 80x24; `:focus-within`
        does not restyle the row's other children when focus moves)."""
        for row in self.query(".form-row"):
            row.set_class(event.widget.parent is row, "-focused")

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if event.widget.parent is not None:
            event.widget.parent.remove_class("-focused")

    def mark_invalid(self, names: set[str]) -> None:
        for spec in self.specs:
            self.query_one(f"#row-{spec.name}").set_class(spec.name in names, "-invalid")

    def _changed(self, name: str) -> None:
        values, errors = self.read()
        self.post_message(self.Changed(self, values, errors, name))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed((event.input.id or "").removeprefix("field-"))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed((event.select.id or "").removeprefix("field-"))

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._changed((event.checkbox.id or "").removeprefix("field-"))
