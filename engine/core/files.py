"""Atomic file writes: a reader never sees half a file, and a failed write leaves the old one.

The new content goes to an exclusive temporary file beside the target, is flushed and fsynced, then renamed
over it. Files get the permissions open() would give them (0666 minus the umask), so a shared runs folder
stays readable by the group when the umask says so.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.core.errors import RunError

if TYPE_CHECKING:
    pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then os.replace: readers see old or new.

    The file gets the permissions open() would give it: a new one 0o666 minus the umask (so with umask 022
    or 002 teammates can read `--runs-dir /shared/runs`), a replaced one keeps its mode. tempfile.mkstemp
    would create 0o600, readable by the owner alone.
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    tmp, fd = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and hasattr(os, "fchmod"):  # no fchmod on Windows before Python 3.13
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new, exclusive temporary file beside `path`. Created with mode 0o666 so the kernel applies the
    umask (and a directory's default ACL) exactly as for open(); reading the umask ourselves would need
    os.umask, which briefly changes it for every thread of the process."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} is missing.") from None
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not valid JSON ({err}). It may have been edited by hand.") from None

