"""Numbers from users, checked one way everywhere: range checks with one wording, and "a/b" numbers.

Two kinds of helper, for the two places a number can be wrong:

- `check_whole` / `check_number` check a value a config or params class holds (typed in a form, read from a
  run's config.json, passed by a library caller) and raise ConfigError: "--steps 0 is out of range: use a
  whole number from 1 to 100000." — the flag, the value, what to use.
- `positive_int`, `non_negative_int`, `positive_float`, `non_negative_float`, `fraction` turn command-line
  text into a value and raise ValueError with a message naming the text ("'abc' is not a number");
  engine.cli wraps them as argparse types, and the config dataclasses name them in their fields' metadata
  ("parse"), so a flag is declared once.
"""

from __future__ import annotations

import math
from fractions import Fraction

from engine.core.errors import ConfigError


def parse_number(text: str | float) -> float:
    """'4/255', '0.2', '1e-3' or a number -> float; ValueError when it is none of those.

    Fractions read naturally for pixel-scale values (eps 4/255) and shares (1/5)."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a number")
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a number") from None


def check_whole(flag: str, value, lo: int, hi: int | None = None, fix: str = "") -> int:
    """`value` as an int from lo to hi (inclusive; no upper bound when hi is None), else ConfigError.
    `fix` replaces the generic "use a whole number from lo to hi" where a field has a better example."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        if not fix:
            fix = f"use a whole number from {lo} to {hi}" if hi is not None else f"use a whole number, {lo} or more"
        raise ConfigError(f"{flag} {value} is out of range: {fix}.")
    return value


def check_number(flag: str, value, lo: float | None = None, hi: float | None = None, *, above: bool = False,
                 below: bool = False, fix: str = "") -> float:
    """`value` as a finite number from lo to hi, else ConfigError. `above` excludes lo and `below` excludes hi
    (a learning rate is above 0; a share is above 0 and below 1); None leaves that side open."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if above else value >= lo
    if ok and hi is not None:
        ok = value < hi if below else value <= hi
    if not ok:
        raise ConfigError(f"{flag} {value} is out of range: {fix or _number_fix(lo, hi, above, below)}.")
    return float(value)


def _number_fix(lo: float | None, hi: float | None, above: bool, below: bool) -> str:
    if hi is None:
        if lo is None:
            return "use a finite number"
        if above:
            return "use a positive number" if lo == 0 else f"use a number above {lo:g}"
        return f"use {lo:g} or more"
    if lo is None:
        return f"use a number below {hi:g}" if below else f"use a number up to {hi:g}"
    low = f"above {lo:g}" if above else f"from {lo:g}"
    high = f"below {hi:g}" if below else f"to {hi:g}"
    return f"use a number {low} {'and ' if above or below else ''}{high}"


# ------------------------------------------------------------------------------------- command-line text


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    return value


def positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise ValueError(f"{text} must be 1 or more")
    return value


def non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise ValueError(f"{text} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    value = _real(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = _real(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text} must be 0 or more")
    return value


def fraction(text: str) -> float:
    """A share in (0, 1): 0.2 or 1/5."""
    value = parse_number(text)
    if not 0 < value < 1:
        raise ValueError(f"{text} must be between 0 and 1 (exclusive), e.g. 0.2")
    return value
