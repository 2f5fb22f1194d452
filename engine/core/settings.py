"""The one way a settings class (TrainConfig, AttackParams, DreamParams, RobustnessParams) declares a field.

A field is declared once, with `setting(...)`: its default, its help text, and what its command-line flag needs
beyond its name and type. engine.cli.fields turns the fields into flags, the workbench's form shows the help,
and validate() checks the values. The metadata keys it reads:

    help      what the setting is (the workbench's form shows it too)
    cli_help  the flag's help, where the command line has more to say than the form's one line
    flag      the spelling, or several ("--target", "--class"); default "--" + the name with "_" -> "-"
    choices   values argparse itself refuses others of (left out where validate() suggests a close match)
    parse     text -> value, an engine.core.checks parser whose ValueError becomes argparse's message; `str`
              keeps the text for validate() to read ("4/255"); default: the annotation's int or float
    switch    (on, off): a str setting set by --x / --no-x, the field's default when neither is given
    modes     the training modes the setting applies to (the workbench's form hides it for the others)
    metavar, required   as argparse's

This module, like every module of the spec layer, imports no torch (an import-linter contract in pyproject.toml
says so): the parsers and the form are built from these fields before torch has loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any


def setting(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None, **cli: Any) -> Any:
    """A dataclass field with its help text and its flag's needs (see the module's docstring). `factory`
    makes a mutable default (a list) per instance."""
    metadata = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)
