"""A dataset's tlbench state: its exclude list and its last audit, kept outside the dataset folder.

Nothing tlbench does ever moves, renames or deletes a user's image. Files the user marks as wrong (from the
workbench's Audit view, or a list they write themselves) go to an exclude list: one path per line, relative
to the dataset root or absolute, '#' starting a comment. Training skips them (`tlbench train --exclude FILE`;
the workbench passes the dataset's own list). The state folder is <cache>/datasets/<name>-<hash of the
dataset's resolved path>, so two datasets of the same name never share it and the dataset stays read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from engine.core.errors import ConfigError
from engine.core.files import atomic_write_json, atomic_write_text
from engine.core.paths import cache_dir
from engine.core.runs import safe_name

EXCLUDE_NAME = "exclude.txt"
AUDIT_NAME = "audit.json"


def state_dir(dataset_root: str | os.PathLike) -> Path:
    """The dataset's tlbench state folder (not created)."""
    root = Path(dataset_root).expanduser().resolve()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return cache_dir() / "datasets" / f"{safe_name(root.name)}-{digest}"


def exclude_file(dataset_root: str | os.PathLike) -> Path:
    return state_dir(dataset_root) / EXCLUDE_NAME


def read_exclude(file: str | os.PathLike, dataset_root: str | os.PathLike, missing_ok: bool = False) -> set[str]:
    """The absolute, resolved paths an exclude list names (relative lines are relative to the dataset root).

    A missing file is a ConfigError (a typo in --exclude must not silently train on everything) unless
    `missing_ok` (the dataset's own list before anything was marked)."""
    path = Path(file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return set()
        raise ConfigError(f"The exclude list {path} does not exist. Pass a text file with one image path per "
                          "line (relative to the dataset folder, or absolute).") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Cannot read the exclude list {path} ({err}). Pass a UTF-8 text file with one "
                          "image path per line.") from None
    root = Path(dataset_root).expanduser().resolve()
    out = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if line:
            out.add(str((root / line).resolve()))  # an absolute line stays itself (pathlib's / rule)
    return out


def write_exclude(dataset_root: str | os.PathLike, paths: Iterable[str]) -> Path:
    """Replace the dataset's own exclude list with `paths` (written relative to the root when inside it)."""
    root = Path(dataset_root).expanduser().resolve()
    lines = []
    for p in sorted({str(Path(p).resolve()) for p in paths}):
        try:
            lines.append(str(Path(p).relative_to(root)))
        except ValueError:
            lines.append(p)
    target = exclude_file(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = f"# tlbench exclude list for {root}: these files are left out of training (never deleted)\n"
    atomic_write_text(target, header + "".join(f"{line}\n" for line in lines))
    return target


def save_audit(dataset_root: str | os.PathLike, audit: dict) -> Path:
    """Keep the dataset's last audit in its state folder (the workbench's Audit view reads it)."""
    target = state_dir(dataset_root) / AUDIT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target, audit)
    return target


def load_audit(dataset_root: str | os.PathLike) -> dict | None:
    """The dataset's last audit, or None (never audited, or an unreadable file)."""
    try:
        data = json.loads((state_dir(dataset_root) / AUDIT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
