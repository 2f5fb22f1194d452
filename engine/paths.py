"""Where tlbench keeps caches and downloaded data (runs live in engine.runs)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$TLBENCH_CACHE, else $XDG_CACHE_HOME/tlbench, else ~/.cache/tlbench."""
    if os.environ.get("TLBENCH_CACHE"):
        return Path(os.environ["TLBENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tlbench"


def data_dir() -> Path:
    """Where `tlbench fetch` puts datasets: $TLBENCH_DATA, else <cache>/data."""
    if os.environ.get("TLBENCH_DATA"):
        return Path(os.environ["TLBENCH_DATA"]).expanduser()
    return cache_dir() / "data"


def demo_dataset() -> Path:
    """The bundled demo (UCI digits), found beside the source tree or the installed package."""
    return Path(__file__).resolve().parent.parent / "data" / "demo" / "digits"
