"""tlbench's headless engine. The version has one source: the installed distribution's metadata, which
setuptools takes from pyproject.toml."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        return metadata.version("tlbench")
    except metadata.PackageNotFoundError:
        # A source checkout run without installing it (python -m tui.main from the repo): the version the
        # checkout's pyproject.toml declares, which is what an install of it would report.
        try:
            with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__ = _version()
