"""One exception family for everything a user can get wrong.

Each error has a short title and a message that says what happened, with which value, and what to do.
The CLI prints it as a panel and exits 2; the workbench shows it in a notification or modal.
"""

from __future__ import annotations

import difflib


class TlbenchError(Exception):
    title = "tlbench error"

    def __init__(self, message: str, *, title: str | None = None):
        super().__init__(message)
        self.message = message
        if title:
            self.title = title

    def __str__(self) -> str:
        return self.message


class DatasetError(TlbenchError):
    title = "Dataset problem"


class WeightsError(TlbenchError):
    title = "Pretrained weights unavailable"


class ConfigError(TlbenchError):
    title = "Invalid setting"


class JobError(TlbenchError):
    title = "Job failed"


class RunError(TlbenchError):
    title = "Run problem"


def suggest(value: str, allowed: list[str] | tuple[str, ...], n: int = 3) -> str:
    """' Did you mean X?' for a close match, or '' when nothing is close."""
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def choice_error(what: str, value, allowed, fix: str = "") -> ConfigError:
    """An error naming the bad value, the allowed ones and the closest match."""
    allowed = list(allowed)
    shown = ", ".join(str(a) for a in allowed[:30]) + (" …" if len(allowed) > 30 else "")
    msg = f"Unknown {what} {value!r}.{suggest(value, allowed)} Allowed: {shown}."
    if fix:
        msg += " " + fix
    return ConfigError(msg)


def explain_unexpected(err: BaseException) -> tuple[str, str]:
    """A title and a message with a fix for errors that are not ours (out of memory, disk full, …)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    low = text.lower()
    if "out of memory" in low or isinstance(err, MemoryError):
        # torch's text has several sentences ("CUDA out of memory. Tried to allocate …"): keep them in one
        # cause so the fix below is what readers (and the workbench's cause/fix split) see as the fix.
        cause = text.rstrip(".").replace(". ", "; ")
        return ("Out of memory",
                f"{cause}. Use a smaller --batch-size (halve it) or a smaller --img-size, or a smaller backbone.")
    if isinstance(err, OSError) and getattr(err, "errno", None) == 28:
        return ("Disk full", f"{text}. Free space where runs and caches are written (see `tlbench doctor`); "
                "the previous checkpoint is intact.")
    return (f"Unexpected {type(err).__name__}",
            f"{text}. Set TLBENCH_DEBUG=1 to see the traceback, and report it if it persists.")
