"""The `tlbench train …` command that reproduces a run, built from its config.json: one flag per setting that
differs from TrainConfig's default, spelled as engine.cli.fields spells it, so `tlbench train` parses it back
into the same settings (tests/engine/cli/test_reproduce.py proves it).

It lives here, in the command-line layer, because it needs TrainConfig (engine.train) and the flags
(engine.cli.fields); `tlbench report` and the workbench pass it to engine.report, which may import neither.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

from engine.cli.fields import flag_names
from engine.train.config import DEFAULT_EPOCHS, TrainConfig

NOT_REPRODUCED = frozenset({"dataset", "runs_dir"})  # the positional; where runs go is the reader's choice
# --mode auto writes the winning recipe over these; the command reruns the search that chose them
CHOSEN_BY_AUTO = frozenset({"backbone", "img_size", "tta", "aug_views", "head_l2", "label_smoothing"})


def _default(f: dataclasses.Field, mode: str) -> Any:
    if f.name == "epochs":
        return DEFAULT_EPOCHS.get(mode)
    return f.default if f.default is not dataclasses.MISSING else None


def setting_flags(f: dataclasses.Field, value: Any, default: Any) -> list[str]:
    """The flag (and value) that sets field `f` to `value`; [] when it is the default or has no spelling."""
    flag = flag_names(f)[0]
    if "switch" in f.metadata:  # channels_last: --x / --no-x, the default when neither (older runs: a bool)
        on, off = f.metadata["switch"]
        value = {True: default, False: off, None: default}.get(value, value)
        return [flag] if value == on and value != default else [f"--no-{flag[2:]}"] if value == off else []
    if value == default or value is None:
        return []
    if isinstance(default, bool) or isinstance(value, bool):
        return [flag] if value else [f"--no-{flag[2:]}"]  # a default-True bool has --no-x (fields.flag_options)
    return [flag, shlex.quote(repr(value) if isinstance(value, float) else str(value))]


def train_command(config: Mapping[str, Any]) -> str:
    """`tlbench train DATASET --flag value …` for the settings a run's config.json records."""
    mode = str(config.get("mode") or "probe")
    parts = ["tlbench", "train", shlex.quote(str(config.get("dataset") or "DATASET"))]
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_REPRODUCED or f.name not in config or (mode == "auto" and f.name in CHOSEN_BY_AUTO):
            continue
        if mode not in f.metadata.get("modes", (mode,)):
            continue  # a setting of another mode (--budget outside auto): it did nothing here
        parts += setting_flags(f, config[f.name], _default(f, mode))
    return " ".join(parts)


def job_command(kind: str, config: Mapping[str, Any], result: Mapping[str, Any] | None = None) -> str:
    """The `tlbench …` line that runs a job of the workbench's Runs list again: a training run (train_command),
    an lr-find (config.json), a comparison (compare.json: its backbones and folds) or an audit (audit.json)."""
    got = result or {}
    dataset = shlex.quote(str(config.get("dataset") or got.get("dataset") or "DATASET"))
    if kind == "compare":
        backbones = ",".join(str(r["backbone"]) for r in got.get("results", []) if r.get("backbone"))
        parts = ["tlbench", "compare", dataset, "--backbones", shlex.quote(backbones or "BACKBONES")]
        if got.get("folds") not in (None, 5):
            parts += ["--folds", str(got["folds"])]
        return " ".join(parts)
    if kind == "audit":
        parts = ["tlbench", "audit", dataset, "--backbone", shlex.quote(str(got.get("backbone") or "BACKBONE"))]
        if got.get("folds") not in (None, 5):
            parts += ["--folds", str(got["folds"])]
        return " ".join(parts)
    if kind == "lr-find":
        parts = ["tlbench", "lr-find", dataset]
        for key, flag in (("mode", "--mode"), ("backbone", "--backbone"), ("img_size", "--img-size"),
                          ("batch_size", "--batch-size"), ("seed", "--seed")):
            if config.get(key) is not None:
                parts += [flag, shlex.quote(str(config[key]))]
        return " ".join(parts)
    return train_command(config)
