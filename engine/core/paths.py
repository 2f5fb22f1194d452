"""Where tlbench keeps caches and downloaded data (runs live in engine.core.runs)."""

from __future__ import annotations

import os
from importlib import resources
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
    """The bundled demo (UCI digits): a folder of PNGs, one subfolder per class.

    The repository keeps it in data/demo (beside its README and the script that makes it); pyproject.toml
    maps that folder into the wheel as the package data engine/demo. So an installed tlbench finds it inside
    the package, and a source checkout or an editable install (where engine/ has no demo) beside the tree.
    """
    installed = resources.files("engine") / "demo" / "digits"
    if isinstance(installed, Path) and installed.is_dir():  # a zipped install is not a folder: use the tree
        return installed
    return Path(__file__).resolve().parents[2] / "data" / "demo" / "digits"
