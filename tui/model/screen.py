"""2 Model: the backbone registry, the mode (one line each) and every TrainConfig field, validated as typed
(tui.model.settings); the learning-rate range test (l, tui.model.lr_finder) with its curve and suggestion (u uses
it); / searches every backbone, timm's pretrained models included (tui.model.search); C ranks backbones on the
dataset (tui.model.leaderboard)."""

from __future__ import annotations

import dataclasses
import re

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from engine.cli.reproduce import train_command
from engine.core.errors import TlbenchError
from tui.model.leaderboard import Leaderboard, open_leaderboard
from tui.model.lr_finder import LrFinder
from tui.model.search import WEIGHTS_STYLE, BackboneSearch, row_cells, weights_text
from tui.model.settings import auto_summary, form_info, validate
from tui.screen import FIELDS, WorkbenchScreen, copy_command
from tui.widgets.form import ConfigForm


class ModelScreen(WorkbenchScreen):
    TAB = "model"
    TITLE = "Model"
    HELP = ("Pick a backbone (enter), a mode and hyperparameters; each value is checked as you type. "
            "/ searches every backbone by name, timm's ~1,800 pretrained models included (timm/<name>). "
            "l runs the learning-rate range test; u uses its suggestion. C ranks backbones on this dataset "
            "(cross-validated accuracy and speed). d resets every setting to its default.")

    HELP_PARTS = (("leaderboard (C)", "Backbones ranked on this dataset; r times them again.", Leaderboard),)

    BINDINGS = [
        Binding("m", "next_mode", "Mode", id="model.mode", tooltip="Cycle probe, head, partial, full"),
        Binding("b", "focus_backbones", "Backbone", id="model.backbones", tooltip="Move to the backbone table"),
        Binding("s", "focus_form", "Fields", id="model.settings", tooltip="Move to the hyperparameters"),
        Binding("l", "lr_find", "LR find", id="model.lr_find",
                tooltip="Learning-rate range test with these settings (l again stops it)"),
        Binding("u", "use_lr", "Use lr", id="model.use_lr", tooltip="Put the range test's suggested lr in the form"),
        # d and / are not in the footer: at 80 columns they would push the screen keys (1-7, ?, q) off it;
        # HELP and the command palette say them
        Binding("d", "defaults", "Defaults", id="model.defaults", show=False,
                tooltip="Reset every setting to its default"),
        Binding("t", "train", "Train", id="model.train", tooltip="Go to Train and start with these settings"),
        Binding("y", "copy_command", "Command", id="model.copy_command", show=False,
                tooltip="Copy the tlbench train line that runs these settings headless"),
        Binding("slash", "search", "Search", id="model.search", show=False,
                tooltip="Search every backbone by name, timm's pretrained models included (enter: to the list)"),
        Binding("C", "compare", "Compare", id="model.compare",
                tooltip="Leaderboard: rank backbones on this dataset (cross-validated accuracy, speed)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: dict | None = None  # form_info()
        self.rows: list[dict] | None = None  # the registry's rows, once loaded
        self.hidden_fields: list[str] = []
        self.search_rows: list[dict] | None = None  # a search's rows, listed instead of the registry's
        self.search_note = ""

    @property
    def registry(self) -> dict | None:
        """form_info() and the rows together, once both are there (tests and the bench wait on this)."""
        if self.info is None or self.rows is None:
            return None
        return {**self.info, "rows": self.rows}

    def compose_body(self) -> ComposeResult:
        yield Static("Loading the backbone registry (PyTorch is starting) …", id="model-header", markup=False)
        with Vertical(id="model-body"):
            yield BackboneSearch()
            yield DataTable(id="backbones", cursor_type="row")
            yield Static("", id="backbone-detail", markup=False)
            yield Static("", id="modes")
            yield LrFinder(id="lr-panel", classes="hidden")
            yield Vertical(id="form-slot")
            yield Static("", id="form-more")
        yield Static("", id="config-status")

    def on_mount(self) -> None:
        table = self.query_one("#backbones", DataTable)
        self.columns = table.add_columns("", "backbone", "params", "input", "top-1", "features", "weights")
        self.query_one(BackboneSearch).display = False  # shown by / (action_search)
        self.watch(self.tlbench, "registry_version", self._registry_arrived, init=False)
        self.tlbench.ensure_registry()
        # The screen paints first; its ~80 form widgets mount right after (a key press switches at once).
        self.call_after_refresh(self._first_form)

    async def _first_form(self) -> None:
        self.info = form_info()
        await self.show_form()
        self._registry_arrived()

    def _registry_arrived(self, _version: int = 0) -> None:
        outcome = self.tlbench.registry_outcome
        if outcome is None:
            return
        error, rows = outcome
        if error is not None:
            self.query_one("#model-header", Static).update("The backbone registry could not be loaded.")
            self.tlbench.show_error(error, "Backbone registry")
            return
        self.rows = rows
        self.show_backbones()
        self.check()

    # ------------------------------------------------------------------------------------ showing

    @property
    def backbone(self) -> str:
        return self.workbench.config.get("backbone") or (self.info or {}).get("default_backbone", "")

    @property
    def mode(self) -> str:
        return self.workbench.config.get("mode", "probe")

    async def show_form(self) -> None:
        assert self.info is not None
        form = ConfigForm(self.info["specs"], self.workbench.config, id="form")
        slot = self.query_one("#form-slot")
        await slot.remove_children()
        await slot.mount(form)
        self.show_modes()
        self.check()

    @property
    def listed(self) -> list[dict]:
        """The rows the table shows: a search's, else the registry's."""
        return self.search_rows if self.search_rows is not None else (self.rows or [])

    def show_backbones(self) -> None:
        assert self.rows is not None
        table = self.query_one("#backbones", DataTable)
        table.clear()
        for row in self.listed:
            table.add_row("●" if row["name"] == self.backbone else " ", *row_cells(row), key=row["name"])
        names = [r["name"] for r in self.listed]
        if self.backbone in names:
            table.move_cursor(row=names.index(self.backbone))
        if self.focused is None:
            table.focus()
        self.show_detail()

    def show_detail(self) -> None:
        """One line under the table: the highlighted backbone's weights, said plainly."""
        table = self.query_one("#backbones", DataTable)
        if not self.listed or table.cursor_row >= len(self.listed):
            self.query_one("#backbone-detail", Static).update(Text(self.search_note, "dim"))
            return
        row = self.listed[table.cursor_row]
        text = Text.assemble((f"{self.search_note} · " if self.search_note else "", "dim"), (row["name"], "bold"),
                             " · weights ", (weights_text(row), WEIGHTS_STYLE.get(row.get("weights") or "", "")))
        if row.get("weights_detail"):
            text.append(f" — {row['weights_detail']}", "dim")
        self.query_one("#backbone-detail", Static).update(text)

    def on_resize(self) -> None:
        self.show_modes()

    def show_modes(self) -> None:
        """One line per mode; on a short terminal only the chosen mode's, so the form keeps its room."""
        if self.info is None:
            return
        text = Text()
        short = self.has_class("-short")
        modes = [(m, line) for m, line in self.info["mode_help"].items() if not short or m == self.mode]
        for i, (mode, line) in enumerate(modes):
            chosen = mode == self.mode
            text.append("\n" if i else "")
            text.append(("● " if chosen else "  ") + f"{mode:<8}", "bold" if chosen else "dim")
            text.append(line, "" if chosen else "dim")
        self.query_one("#modes", Static).update(text)
        if self.query("#form"):
            auto = self.mode == "auto"
            hide = tuple(self.info["auto_chooses"]) + tuple(self.info["auto_ignores"]) if auto else ()
            first = tuple(self.info["auto_first"]) if auto else ()
            self.hidden_fields = self.query_one("#form", ConfigForm).show_for_mode(self.mode, hide, first)

    @on(ConfigForm.Scrolled)
    def show_more_hint(self, event: ConfigForm.Scrolled | None = None) -> None:
        """The form scrolls: say how many settings are out of view, and which do not apply to the mode."""
        if not self.query("#form"):
            return
        above, below = self.query_one("#form", ConfigForm).out_of_view()
        parts = []
        if below:
            parts.append(f"▼ {below} more below (s, tab)")
        if above:
            parts.append(f"▲ {above} above")
        chosen = [n for n in self.hidden_fields if self.mode == "auto" and n in (self.info or {}).get("auto_chooses", ())]
        unused = [n for n in self.hidden_fields if n not in chosen]
        if chosen:
            parts.append(f"auto chooses {', '.join(chosen)}")
        if unused:
            parts.append(f"not used in {self.mode} mode: {', '.join(unused)}")
        self.query_one("#form-more", Static).update(Text(" · ".join(parts), "dim"))

    def check(self, values: dict | None = None, parse_errors: dict[str, str] | None = None) -> None:
        """Validate the whole config; show the reason and mark the field it names."""
        values = dict(self.workbench.config if values is None else values)
        values["backbone"] = self.backbone
        parse_errors = parse_errors or {}
        specs = self.info["specs"] if self.info else []
        if parse_errors:
            message = next(iter(parse_errors.values()))
            bad = set(parse_errors)
        else:
            message = validate(values, str(self.workbench.dataset or ""), self.workbench.runs_dir)
            bad = {s.name for s in specs if message and re.search(rf"{re.escape(s.flag)}\b|\b{s.name}\b", message)}
        if self.query("#form"):
            self.query_one("#form", ConfigForm).mark_invalid(bad)
        self.workbench.config_error = message
        status = self.query_one("#config-status", Static)
        dataset = self.workbench.info.name if self.workbench.info else "no dataset"
        if message:
            status.update(Text.assemble(("✗ ", "bold red"), (message, "red")))
        elif self.mode == "auto":  # auto picks the backbone and trains one solve: say what it will search
            plan = (auto_summary(values, str(self.workbench.dataset or "")) if self.rows is not None
                    else f"searches recipes within {values.get('budget') or 15:g} min")
            status.update(Text.assemble(("✓ ", "bold green"), f"auto {plan} · {dataset} — t to train"))
        else:
            epochs = values.get("epochs")
            if epochs is None:  # an empty field means the mode's default: say which, never silently
                default = (self.info or {}).get("default_epochs", {}).get(self.mode, "?")
                epochs_text = f"{default} epochs (the {self.mode} default)"
            else:
                epochs_text = f"{epochs} epochs"
            status.update(Text.assemble(("✓ ", "bold green"), f"{self.mode} · {self.backbone} · {epochs_text} "
                                        f"· {dataset} — t to train"))
        status.set_class(bool(message), "-invalid")
        # one line: while the registry loads, that comes first, so a narrow terminal does not cut it off
        chosen = "chosen by the search" if self.mode == "auto" else self.backbone
        header = (f"Training settings for {dataset}: backbone {chosen}, mode {self.mode}"
                  if self.rows is not None else
                  f"Loading the backbones (PyTorch is starting) … · {dataset} · {self.backbone} · {self.mode}")
        self.query_one("#model-header", Static).update(header)

    # ------------------------------------------------------------------------------------ events

    @on(ConfigForm.Changed)
    def form_changed(self, event: ConfigForm.Changed) -> None:
        specs = {s.name: s for s in event.form.specs}
        config = {k: v for k, v in event.values.items() if v != specs[k].default}
        config["backbone"] = self.backbone
        if not event.errors:
            self.share(config=config)
        self.show_modes()
        self.check(config if not event.errors else None, event.errors)

    @on(DataTable.RowHighlighted, "#backbones")
    def backbone_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    @on(DataTable.RowSelected, "#backbones")
    def backbone_chosen(self, event: DataTable.RowSelected) -> None:
        name = str(event.row_key.value)
        row = next((r for r in self.listed if r["name"] == name), None)
        self.share(config={**self.workbench.config, "backbone": name})
        table = self.query_one("#backbones", DataTable)
        for key in table.rows:
            table.update_cell(key, table.ordered_columns[0].key, "●" if key.value == name else " ")
        own_weights = self.workbench.config.get("weights")  # 'random' or a file: the registry's do not matter
        if row and not own_weights and row.get("weights") in ("missing", "download"):
            title = "Weights missing" if row["weights"] == "missing" else "Weights need a download"
            self.notify(f"{name}: {row['weights_detail']}. Training needs them (or weights = random).",
                        title=title, severity="warning")
        self.check()

    def action_search(self) -> None:
        """/: the search box above the table; typing filters it, enter moves to the list."""
        box = self.query_one(BackboneSearch)
        box.display = True
        box.focus()

    @on(BackboneSearch.Listed)
    def search_listed(self, event: BackboneSearch.Listed) -> None:
        if event.text != self.query_one(BackboneSearch).value.strip() or self.rows is None:
            return  # typed on since: a newer search is under way
        self.search_rows = event.rows
        more = f", the first {len(event.rows)} listed" if event.rows and event.total > len(event.rows) else ""
        self.search_note = f"{event.total} match(es) for {event.text!r}{more}" if event.text else ""
        self.show_backbones()

    @on(BackboneSearch.Measured)
    def search_measured(self, event: BackboneSearch.Measured) -> None:
        names = [r["name"] for r in self.search_rows or []]
        if event.row["name"] in names:
            assert self.search_rows is not None
            self.search_rows[names.index(event.row["name"])] = event.row
            table = self.query_one("#backbones", DataTable)
            for column, cell in zip(self.columns[1:], row_cells(event.row)):
                table.update_cell(event.row["name"], column, cell)
            self.show_detail()

    @on(Input.Submitted, "#backbone-search")
    def search_submitted(self) -> None:
        self.query_one("#backbones", DataTable).focus()

    def state_changed(self) -> None:
        if self.info is not None:
            self.sync_form()
            self.show_modes()
            self.check()

    def sync_form(self) -> None:
        """Show settings another screen changed (Data's k, the leaderboard's pick) in the form, so the form's
        next edit does not put the old value back."""
        forms = self.query("#form").results(ConfigForm)
        form = next(iter(forms), None)
        if form is None:
            return
        values, errors = form.read()
        for spec in form.specs:
            want = self.workbench.config.get(spec.name, spec.default)
            if spec.name not in errors and values.get(spec.name) != want:
                form.set_value(spec.name, want)

    def action_leave_field(self) -> None:
        """Esc: leave a field; otherwise close the finished lr-find panel."""
        if not isinstance(self.focused, FIELDS) and self.query_one(LrFinder).close():
            self.query_one("#model-body").remove_class("-lr")
            return
        super().action_leave_field()

    # ------------------------------------------------------------------------------------ actions

    def action_next_mode(self) -> None:
        if self.info is None or not self.query("#form"):
            return
        modes = list(self.info["mode_help"])
        form = self.query_one("#form", ConfigForm)
        # the form's value, not the shared config: that follows the form one message later, so `m m` in a
        # burst would read the old mode twice and change it once (issue 24 item 7)
        current = form.read()[0].get("mode", self.mode)
        nxt = modes[(modes.index(current) + 1) % len(modes)] if current in modes else modes[0]
        form.set_value("mode", nxt)

    def action_focus_backbones(self) -> None:
        self.query_one("#backbones", DataTable).focus()

    def action_focus_form(self) -> None:
        fields = [w for w in self.query("#form .form-value") if w.parent is not None and w.parent.display]
        if fields:
            fields[0].focus()

    async def action_defaults(self) -> None:
        if self.info is None:
            return
        self.share(config={})
        await self.show_form()
        if self.rows is not None:
            self.show_backbones()

    def action_compare(self) -> None:
        open_leaderboard(self)

    def pick_backbone(self, name: str) -> None:
        """The backbone chosen on the leaderboard becomes the form's, as choosing it in the table would."""
        self.share(config={**self.workbench.config, "backbone": name})
        if self.rows is not None:
            self.show_backbones()
        self.check()
        self.notify(f"backbone: {name}", title="Picked from the leaderboard")

    def action_lr_find(self) -> None:
        """l: the range test with the form's settings as a job (l again stops it)."""
        finder = self.query_one(LrFinder)
        if finder.busy:
            finder.stop()
            return
        if self.workbench.config_error:
            self.notify(self.workbench.config_error, title="Fix the settings first", severity="error")
            return
        if self.workbench.dataset is None:
            self.notify("Open a dataset on the Data screen (1) first.", severity="error")
            return
        finder.start()
        self.query_one("#model-body").add_class("-lr")

    def action_use_lr(self) -> None:
        finder = self.query_one(LrFinder)
        if not finder.suggestion:
            self.notify("No suggestion yet: l runs the learning-rate range test.", severity="warning")
            return
        if not self.query("#form"):
            return
        lr = float(f"{finder.suggestion:.1e}")  # two significant digits: what a person would type
        self.query_one("#form", ConfigForm).set_value("lr", lr)
        finder.say(f"lr set to {lr:g}")

    def action_copy_command(self) -> None:
        """The `tlbench train …` line of the form's settings (the Runs screen's `y` gives a run's)."""
        try:
            config = self.workbench.train_config()
        except TlbenchError as err:
            self.notify(err.message, title="These settings do not run yet", severity="error", markup=False)
            return
        copy_command(self, train_command(dataclasses.asdict(config)))

    async def action_train(self) -> None:
        await self.app.switch_mode("train")
        await self.app.run_action("screen.start")  # t on the Train screen
