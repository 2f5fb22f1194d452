"""2 Model: the backbone registry, the mode (one line each) and every TrainConfig field, validated as typed."""

from __future__ import annotations

import dataclasses
import re
import typing

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from engine.events import Event, JobFinished
from tui.jobs import RunningJob, run_engine_job
from tui.model.form import ConfigForm, FieldSpec
from tui.screen import WorkbenchScreen

# Set by the workbench itself, not typed in: the open dataset, the runs folder, the backbone (the table).
NOT_IN_FORM = {"dataset", "runs_dir", "backbone"}
WEIGHTS_STYLE = {"shipped": "green", "cached": "green", "download": "yellow", "missing": "red"}


def field_specs(config_cls, choices: dict[str, tuple[str, ...]]) -> list[FieldSpec]:
    """FieldSpecs from the dataclass: type from the annotations, help from metadata["help"]."""
    hints = typing.get_type_hints(config_cls)
    specs = []
    for f in dataclasses.fields(config_cls):
        if f.name in NOT_IN_FORM:
            continue
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        kind = {int: "int", float: "float", bool: "bool"}.get(base, "str")
        help_text = f.metadata.get("help", "")
        options = choices.get(f.name) or help_choices(help_text) if kind == "str" else ()
        specs.append(FieldSpec(f.name, kind, optional, f.default, help_text, tuple(options or ())))
    return specs


def help_choices(help_text: str) -> tuple[str, ...]:
    """'a | b (more) | c' in a help text lists the allowed values of a new field nobody told us about."""
    if " | " not in help_text:
        return ()
    return tuple(m.group(1) for m in (re.match(r"\s*([\w.-]+)", part) for part in help_text.split("|")) if m)


def load_registry(ctx) -> dict:
    """The job behind the screen (imports torch; runs on a worker thread)."""
    from engine.backbones import available_backbones, backbone_info
    from engine.config import AUGMENTS, DEFAULT_EPOCHS, MODE_HELP, MODES, OPTIMIZERS, TrainConfig
    from engine.devices import DEVICES

    choices = {"mode": MODES, "device": DEVICES, "optimizer": OPTIMIZERS, "augment": AUGMENTS}
    specs = field_specs(TrainConfig, choices)
    rows = []
    for name in available_backbones():
        ctx.check()
        rows.append(backbone_info(name))
    return {"rows": rows, "specs": specs, "mode_help": dict(MODE_HELP), "default_epochs": dict(DEFAULT_EPOCHS),
            "default_backbone": TrainConfig.backbone}


def validate(values: dict, dataset: str, runs_dir: str | None) -> str | None:
    """None when the settings are valid, else TrainConfig.validate()'s reason (it names the value)."""
    from engine.config import TrainConfig
    from engine.errors import TlbenchError

    try:
        TrainConfig.from_dict({**values, "dataset": dataset or "", "runs_dir": runs_dir}).validate()
    except TlbenchError as err:
        return err.message
    return None


class ModelScreen(WorkbenchScreen):
    TAB = "model"
    TITLE = "Model"
    HELP = "Pick a backbone (enter), a mode and hyperparameters; each value is checked as you type."

    BINDINGS = [
        Binding("m", "next_mode", "Mode", id="model.mode", tooltip="Cycle probe, head, partial, full"),
        Binding("b", "focus_backbones", "Backbone", id="model.backbones", tooltip="Move to the backbone table"),
        Binding("s", "focus_form", "Fields", id="model.settings", tooltip="Move to the hyperparameters"),
        Binding("d", "defaults", "Defaults", id="model.defaults", tooltip="Reset every setting to its default"),
        Binding("t", "train", "Train", id="model.train", tooltip="Go to Train and start with these settings"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.registry: dict | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("Loading the backbone registry (PyTorch is starting) …", id="model-header", markup=False)
        with Vertical(id="model-body"):
            yield DataTable(id="backbones", cursor_type="row")
            yield Static("", id="modes")
            yield Vertical(id="form-slot")
        yield Static("", id="config-status")

    def on_mount(self) -> None:
        table = self.query_one("#backbones", DataTable)
        table.add_columns("", "backbone", "params", "input", "top-1", "features", "weights")
        self.run_registry(self.start_job("registry"))

    @work(thread=True, exclusive=True, group="registry", exit_on_error=False)
    def run_registry(self, job: RunningJob) -> None:
        run_engine_job(self, job, load_registry, self.tlbench.jobs)

    async def job_event(self, job: str, event: Event) -> None:
        if job == "registry" and isinstance(event, JobFinished) and event.reason == "completed":
            self.registry = event.result
            await self.show_registry()

    # ------------------------------------------------------------------------------------ showing

    @property
    def backbone(self) -> str:
        return self.workbench.config.get("backbone") or (self.registry or {}).get("default_backbone", "")

    @property
    def mode(self) -> str:
        return self.workbench.config.get("mode", "probe")

    async def show_registry(self) -> None:
        assert self.registry is not None
        table = self.query_one("#backbones", DataTable)
        table.clear()
        for row in self.registry["rows"]:
            top1 = f"{row['imagenet_top1']:.1f}" if row["imagenet_top1"] else "-"
            table.add_row(
                "●" if row["name"] == self.backbone else " ", row["name"],
                Text(f"{row['params'] / 1e6:.1f}M", justify="right"), Text(str(row["input_size"]), justify="right"),
                Text(top1, justify="right"), Text(str(row["feature_dim"]), justify="right"),
                Text(row["weights"], style=WEIGHTS_STYLE.get(row["weights"], "")), key=row["name"])
        names = [r["name"] for r in self.registry["rows"]]
        if self.backbone in names:
            table.move_cursor(row=names.index(self.backbone))
        form = ConfigForm(self.registry["specs"], self.workbench.config, id="form")
        slot = self.query_one("#form-slot")
        await slot.remove_children()
        await slot.mount(form)
        self.show_modes()
        self.check()
        table.focus()

    def on_resize(self) -> None:
        self.show_modes()

    def show_modes(self) -> None:
        """One line per mode; on a short terminal only the chosen mode's, so the form keeps its room."""
        if self.registry is None:
            return
        text = Text()
        short = self.has_class("-short")
        modes = [(m, line) for m, line in self.registry["mode_help"].items() if not short or m == self.mode]
        for i, (mode, line) in enumerate(modes):
            chosen = mode == self.mode
            text.append("\n" if i else "")
            text.append(("● " if chosen else "  ") + f"{mode:<8}", "bold" if chosen else "dim")
            text.append(line, "" if chosen else "dim")
        self.query_one("#modes", Static).update(text)

    def check(self, values: dict | None = None, parse_errors: dict[str, str] | None = None) -> None:
        """Validate the whole config; show the reason and mark the field it names."""
        values = dict(self.workbench.config if values is None else values)
        values["backbone"] = self.backbone
        parse_errors = parse_errors or {}
        if parse_errors:
            message = next(iter(parse_errors.values()))
            bad = set(parse_errors)
        else:
            message = validate(values, str(self.workbench.dataset or ""), self.workbench.runs_dir)
            bad = {s.name for s in self.registry["specs"] if message and re.search(
                rf"{re.escape(s.flag)}\b|\b{s.name}\b", message)} if self.registry else set()
        if self.query("#form"):
            self.query_one("#form", ConfigForm).mark_invalid(bad)
        self.workbench.config_error = message
        status = self.query_one("#config-status", Static)
        dataset = self.workbench.info.name if self.workbench.info else "no dataset"
        if message:
            status.update(Text.assemble(("✗ ", "bold red"), (message, "red")))
        else:
            epochs = values.get("epochs")
            if epochs is None:  # an empty field means the mode's default: say which, never silently
                default = (self.registry or {}).get("default_epochs", {}).get(self.mode, "?")
                epochs_text = f"{default} epochs (the {self.mode} default)"
            else:
                epochs_text = f"{epochs} epochs"
            status.update(Text.assemble(("✓ ", "bold green"), f"{self.mode} · {self.backbone} · {epochs_text} "
                                        f"· {dataset} — t to train"))
        status.set_class(bool(message), "-invalid")
        self.query_one("#model-header", Static).update(
            f"Training settings for {dataset}: backbone {self.backbone}, mode {self.mode}")

    # ------------------------------------------------------------------------------------ events

    @on(ConfigForm.Changed)
    def form_changed(self, event: ConfigForm.Changed) -> None:
        specs = {s.name: s for s in event.form.specs}
        config = {k: v for k, v in event.values.items() if v != specs[k].default}
        config["backbone"] = self.backbone
        if not event.errors:
            self.workbench.config = config
            self.workbench.changed()
            self._seen_version = self.workbench.version
        self.show_modes()
        self.check(config if not event.errors else None, event.errors)

    @on(DataTable.RowSelected, "#backbones")
    def backbone_chosen(self, event: DataTable.RowSelected) -> None:
        name = str(event.row_key.value)
        row = next(r for r in self.registry["rows"] if r["name"] == name) if self.registry else None
        self.workbench.config = {**self.workbench.config, "backbone": name}
        self.workbench.changed()
        self._seen_version = self.workbench.version
        table = self.query_one("#backbones", DataTable)
        for key in table.rows:
            table.update_cell(key, table.ordered_columns[0].key, "●" if key.value == name else " ")
        if row and row["weights"] == "missing":
            self.notify(f"{name}: {row['weights_detail']}.", title="Weights missing", severity="warning")
        self.check()

    def state_changed(self) -> None:
        if self.registry is not None:
            self.check()

    # ------------------------------------------------------------------------------------ actions

    def action_next_mode(self) -> None:
        if self.registry is None or not self.query("#form"):
            return
        modes = list(self.registry["mode_help"])
        nxt = modes[(modes.index(self.mode) + 1) % len(modes)] if self.mode in modes else modes[0]
        self.query_one("#form", ConfigForm).set_value("mode", nxt)

    def action_focus_backbones(self) -> None:
        self.query_one("#backbones", DataTable).focus()

    def action_focus_form(self) -> None:
        fields = self.query("#form .form-value")
        if fields:
            fields.first().focus()

    async def action_defaults(self) -> None:
        if self.registry is None:
            return
        self.workbench.config = {}
        self.workbench.changed()
        await self.show_registry()

    async def action_train(self) -> None:
        await self.app.switch_mode("train")
        self.app.screen.action_start()  # type: ignore[attr-defined]
