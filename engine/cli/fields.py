"""Command-line flags generated from a settings dataclass (TrainConfig, AttackParams, …): a setting is
declared once, as a field, and its flag, the workbench's form and the validation follow.

A field gives its name, type and default; its metadata says what the flag needs beyond those:

    help      what the setting is (the workbench's form shows it too)
    cli_help  the flag's help, where the command line has more to say than the form's one line
    flag      the spelling, or several ("--target", "--class"); default "--" + the name with "_" -> "-"
    choices   values argparse itself refuses others of (left out where validate() suggests a close match)
    parse     text -> value, an engine.core.checks parser whose ValueError becomes argparse's message; `str`
              keeps the text for validate() to read ("4/255"); default: the annotation's int or float
    switch    (on, off): a str setting set by --x / --no-x, the field's default when neither is given
    metavar, required   as argparse's

A bool whose default is False is turned on by --x; one whose default is True gets --x/--no-x.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Collection, Mapping
from typing import Any

from engine.cli.common import argument_type


def flag_names(f: dataclasses.Field) -> tuple[str, ...]:
    spelling = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    return (spelling,) if isinstance(spelling, str) else tuple(spelling)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _base_type(hint: Any) -> Any:
    """int for `int | None`, the hint itself otherwise."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def flag_options(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """add_argument's keyword arguments for field `f` (its type hint resolved)."""
    meta = f.metadata
    options: dict[str, Any] = {"dest": f.name, "default": _default(f), "help": meta.get("cli_help", meta.get("help"))}
    base = _base_type(hint)
    if "switch" in meta:
        options.update(action=argparse.BooleanOptionalAction, default=None)
    elif base is bool:
        options["action"] = argparse.BooleanOptionalAction if options["default"] else "store_true"
    else:
        parse = meta.get("parse")
        if parse is not None and parse is not str:
            options["type"] = argument_type(parse)
        elif parse is None and base in (int, float):
            options["type"] = base  # argparse's own "invalid int value: 'x'"
        for key in ("choices", "metavar", "required"):
            if key in meta:
                options[key] = meta[key]
    return options


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: Collection[str] = (),
                        flags: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """One flag per field of `cls`, in field order, except those in `skip` (positionals, settings a
    command does not have); `flags` overrides a field's add_argument options for this command."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        options = {**flag_options(f, hints[f.name]), **(flags or {}).get(f.name, {})}
        parser.add_argument(*flag_names(f), **options)


def values_from_args(args: argparse.Namespace, cls: type, skip: Collection[str] = ()) -> dict[str, Any]:
    """The fields of `cls` that `args` holds (a flag or a positional of the same name), as field values:
    `cls(**values_from_args(args, cls))`. Fields the command has no flag for keep their defaults."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if "switch" in f.metadata:
            on, off = f.metadata["switch"]
            value = {True: on, False: off}.get(value, f.default)
        values[f.name] = value
    return values
