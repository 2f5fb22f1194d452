"""One exception family for everything a user can get wrong, or that can go wrong in a job.

Each error has a short title and a message that says what happened, with which value, and what to do.
The CLI prints it as a panel and exits with the error's `exit_code`; the workbench shows it in a
notification or modal.

Exit codes say who can fix it, so scripts can tell the cases apart:
    2  bad input: a setting, a dataset, an argument, a file the user named (fix the command and rerun)
    1  a job that failed: training diverged, a download failed, an unexpected exception, out of memory
    128+N  stopped by signal N (130 for Ctrl+C), with the job's state saved
Every direct subclass of TlbenchError states its code (tests/engine/cli/test_exit_codes.py lists them all, so a new
error class has to be placed deliberately); a single raise can override it with `exit_code=`.
"""

from __future__ import annotations

import difflib

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_SIGNAL_BASE = 128  # + the signal number, as a shell reports a process ended by a signal


class TlbenchError(Exception):
    title = "tlbench error"
    # A failure unless the error says the input was bad: an error nobody classified must not tell a script
    # "fix your command" when retrying might be what helps.
    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, title: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if title:
            self.title = title
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class DatasetError(TlbenchError):
    title = "Dataset problem"
    exit_code = EXIT_BAD_INPUT


class WeightsError(TlbenchError):
    """A weights file the user named, or weights that are not here; a failed download raises it with
    exit_code=EXIT_FAILED."""

    title = "Pretrained weights unavailable"
    exit_code = EXIT_BAD_INPUT


class ConfigError(TlbenchError):
    title = "Invalid setting"
    exit_code = EXIT_BAD_INPUT


class JobError(TlbenchError):
    """A job that started on good input and failed (e.g. TrainingDiverged)."""

    title = "Job failed"
    exit_code = EXIT_FAILED


class RunError(TlbenchError):
    """A run directory the user named: missing, not a run, finished, or with a file that cannot be read."""

    title = "Run problem"
    exit_code = EXIT_BAD_INPUT


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
