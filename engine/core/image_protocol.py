"""Which picture protocol the terminal speaks, read from the environment: Kitty graphics, Sixel, or half blocks.

Torch-free and UI-free, so `tlbench doctor` and the workbench decide the same way. The environment is all a
program can read without writing to the terminal; when it says nothing sure (`certain` False) the workbench
also asks the terminal itself at start-up (a Sixel-capable terminal lists 4 in its device attributes; that is
how `xterm -ti vt340` is found), and doctor says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.core.errors import ConfigError

ENV = "TLBENCH_IMAGES"
PROTOCOLS = ("kitty", "sixel", "halfblock")

# TERM_PROGRAM values of terminals that draw Sixel. WezTerm speaks Kitty's protocol too, but not the Unicode
# placeholders a TUI needs (textual-image's notes), so Sixel it is.
SIXEL_PROGRAMS = {"wezterm", "iterm.app", "mlterm", "contour", "mintty", "konsole", "blackbox", "rio"}
SIXEL_TERMS = ("foot", "mlterm", "contour", "yaft", "mintty")


@dataclass(frozen=True)
class Detected:
    protocol: str  # one of PROTOCOLS
    reason: str  # why, in words doctor prints
    certain: bool  # False: only a guess from the environment; the terminal may be asked


def forced(env: Mapping[str, str] | None = None) -> str | None:
    """TLBENCH_IMAGES when set; a value outside PROTOCOLS is an error naming it and the choices."""
    env = os.environ if env is None else env
    value = env.get(ENV, "").strip()
    if not value:
        return None
    if value.lower() not in PROTOCOLS:
        raise ConfigError(f"{ENV}={value!r} is not a picture protocol. Choose one of {', '.join(PROTOCOLS)}, "
                          f"or unset {ENV} to detect it.")
    return value.lower()


def detect(env: Mapping[str, str] | None = None) -> Detected:
    env = os.environ if env is None else env
    choice = forced(env)
    if choice is not None:
        return Detected(choice, f"forced by {ENV}={choice}", True)
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if env.get("TMUX") or term.startswith(("tmux", "screen")):
        return Detected("halfblock", f"inside tmux/screen: set {ENV}=sixel where tmux 3.4+ draws Sixel itself, "
                        f"or {ENV}=kitty with `set -g allow-passthrough on`", True)
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty":
        return Detected("kitty", "kitty (KITTY_WINDOW_ID or TERM=xterm-kitty)", True)
    if program.lower() == "ghostty" or term == "xterm-ghostty":
        return Detected("kitty", "Ghostty speaks the Kitty graphics protocol", True)
    if program.lower() in SIXEL_PROGRAMS:
        return Detected("sixel", f"TERM_PROGRAM={program} draws Sixel", True)
    if env.get("KONSOLE_VERSION"):
        return Detected("sixel", "Konsole (KONSOLE_VERSION) draws Sixel", True)
    if term.startswith(SIXEL_TERMS):
        return Detected("sixel", f"TERM={term} draws Sixel", True)
    shown = ", ".join(f"{k}={env[k]}" for k in ("TERM", "TERM_PROGRAM") if env.get(k)) or "no TERM"
    return Detected("halfblock", f"no graphics terminal known from {shown}", False)
