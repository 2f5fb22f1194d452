"""The Model screen's settings: the form's fields, read from TrainConfig's dataclass fields (a field added to the
engine appears by itself), and the check of a whole config against the engine's own rules."""

from __future__ import annotations

import dataclasses
import re
import typing

from engine.core.choices import DEVICES
from engine.core.errors import TlbenchError
from engine.train.config import (
    AUGMENTS,
    AUTO_CHOOSES,
    AUTO_FIRST,
    AUTO_IGNORES,
    DEFAULT_EPOCHS,
    MODE_HELP,
    MODES,
    OPTIMIZERS,
    TrainConfig,
)
from tui.engine_calls import search_summary
from tui.widgets.form import FieldSpec

# Set by the workbench itself, not typed in: the open dataset, the runs folder, the backbone (the table).
NOT_IN_FORM = {"dataset", "runs_dir", "backbone"}
# Which modes a field applies to, for fields whose dataclass metadata does not say ("modes"): the engine
# ignores them elsewhere (a probe trains on cached features: no augmentation, no BatchNorm, no stages).
FIELD_MODES = {
    "unfreeze": ("partial",),
    "freeze_epochs": ("full",),
    "train_bn": ("partial", "full"),
    "augment": ("head", "partial", "full"),
}


def field_specs(config_cls, choices: dict[str, tuple[str, ...]]) -> list[FieldSpec]:
    """FieldSpecs from the dataclass: type from the annotations, help from metadata["help"], the modes a
    field applies to from metadata["modes"] (else FIELD_MODES)."""
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
        modes = tuple(f.metadata.get("modes") or FIELD_MODES.get(f.name, ()))
        specs.append(FieldSpec(f.name, kind, optional, f.default, help_text, tuple(options or ()), modes))
    return specs


def help_choices(help_text: str) -> tuple[str, ...]:
    """'a | b (more) | c' in a help text lists the allowed values of a new field nobody told us about."""
    if " | " not in help_text:
        return ()
    return tuple(m.group(1) for m in (re.match(r"\s*([\w.-]+)", part) for part in help_text.split("|")) if m)


def form_info() -> dict:
    """What the form needs: TrainConfig's fields and the modes (the spec layer: no torch)."""
    choices = {"mode": MODES, "device": DEVICES, "optimizer": OPTIMIZERS, "augment": AUGMENTS}
    return {"specs": field_specs(TrainConfig, choices), "mode_help": dict(MODE_HELP),
            "default_epochs": dict(DEFAULT_EPOCHS), "default_backbone": TrainConfig.backbone,
            "auto_chooses": AUTO_CHOOSES, "auto_ignores": AUTO_IGNORES, "auto_first": AUTO_FIRST}


def auto_summary(values: dict, dataset: str) -> str:
    """What --mode auto will search with these settings (engine.train.auto_plan, which imports torch: called
    once the registry is loaded, so the warm-up has imported it)."""
    try:
        config = TrainConfig.from_dict({**values, "dataset": dataset or "", "mode": "auto"})
    except Exception:  # noqa: BLE001 - invalid settings are reported by validate(); the summary waits
        return "searches recipes"
    return search_summary(config)


def validate(values: dict, dataset: str, runs_dir: str | None) -> str | None:
    """None when the settings are valid, else TrainConfig.validate()'s reason (it names the value)."""
    try:
        TrainConfig.from_dict({**values, "dataset": dataset or "", "runs_dir": runs_dir}).validate()
    except TlbenchError as err:
        return err.message
    return None
