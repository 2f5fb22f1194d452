"""What every subcommand shares: argument types, error display, JSON output, running a job with signals."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from engine.errors import TlbenchError
from engine.events import JobFailed, JobFinished
from engine.jobs import JobControl, JobFn, run_job

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


# ------------------------------------------------------------------------------------- argument types


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def fraction(text: str) -> float:
    """A value in (0, 1): 0.2 or 1/5."""
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1 (exclusive), e.g. 0.2")
    return value


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


# ------------------------------------------------------------------------------------- output


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)


def print_json(obj: Any) -> None:
    sys.__stdout__.write(json.dumps(obj, indent=2, default=_json_default) + "\n")
    sys.__stdout__.flush()


def _json_default(obj: Any):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


def print_error_json(title: str, message: str, kind: str = "error") -> None:
    print_json({"error": {"title": title, "message": message, "kind": kind}})


def show_error(title: str, message: str) -> None:
    from rich.panel import Panel
    from rich.text import Text

    # soft_wrap off here: the stderr console soft-wraps, which would crop a long message inside the panel
    stderr_console().print(Panel(Text(message), title=f"[bold red]{title}", border_style="red", expand=False),
                           soft_wrap=False)


def handle_errors(args: argparse.Namespace, fn: Callable[[], int]) -> int:
    """Run a subcommand: a TlbenchError becomes a panel on stderr (and a JSON error) and exit 2."""
    try:
        return fn()
    except TlbenchError as err:
        return report_failure(args, err)
    except KeyboardInterrupt:
        show_error("Interrupted", "Stopped by Ctrl+C.")
        return 130


def report_failure(args: argparse.Namespace, err: BaseException, title: str | None = None) -> int:
    if isinstance(err, TlbenchError):
        title, message, code, kind = title or err.title, err.message, EXIT_BAD_INPUT, type(err).__name__
    else:
        from engine.errors import explain_unexpected

        title, message = explain_unexpected(err)
        code, kind = EXIT_FAILED, type(err).__name__
        if os.environ.get("TLBENCH_DEBUG"):
            traceback.print_exception(err, file=sys.stderr)
    show_error(title, message)
    if getattr(args, "json", False):
        print_error_json(title, message, kind)
    return code


# ------------------------------------------------------------------------------------- jobs


@contextlib.contextmanager
def stop_on_signals(control: JobControl):
    """SIGINT, SIGTERM and SIGHUP (an SSH session dropping) ask the job to stop at the next batch, so it
    saves its state and exits cleanly. A second signal aborts at once."""
    received: list[int] = []

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        name = signal.Signals(signum).name
        sys.stderr.write(f"\n{name}: stopping after the current step (saving state). Send it again to abort.\n")
        control.stop()

    old = {}
    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    try:
        for sig in sigs:
            old[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: no signal handling
        old = {}
    try:
        yield received
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def run_cli_job(args: argparse.Namespace, name: str, fn: JobFn, description: str = "",
                quiet: bool = False) -> tuple[int, JobFinished | JobFailed, list[int]]:
    """Run a job in the main thread with a progress display on stderr; stdout is kept for the JSON."""
    from engine.cli.progress import ProgressSink

    control = JobControl()
    sink = ProgressSink(enabled=not quiet)
    with stop_on_signals(control) as received, contextlib.redirect_stdout(sys.stderr), sink:
        final = run_job(name, fn, sink, control, description)
    if isinstance(final, JobFailed):
        return report_failure(args, final.error, final.title), final, received
    if final.reason == "stopped":
        code = 128 + received[0] if received else 130
        return code, final, received
    return EXIT_OK, final, received
