"""Where a job's output goes when the user names no place: a new name stamped with the time it was made.

Attacks write a folder of PNGs, dreams one PNG, under the run they used (RUN/attacks, RUN/dreams) or under the
runs root. Two jobs started in the same second get different names (-2, -3, …): neither overwrites the other.
"""

from __future__ import annotations

import time
from pathlib import Path

from engine.core.runs import safe_name


def timestamped(base: Path, *labels: str, suffix: str = "") -> Path:
    """base/<YYYYmmdd-HHMMSS>-<label>-…<suffix> that does not exist yet. Labels are user text (a class name,
    a backbone) made safe for a file name; nothing is created."""
    stem = "-".join([time.strftime("%Y%m%d-%H%M%S"), *(safe_name(label) for label in labels)])
    path = base / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = base / f"{stem}-{n}{suffix}"
        n += 1
    return path
