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
from typing import Any

from engine.core import checks
from engine.core.errors import (  # the exit codes are re-exported: subcommands import them from here
    EXIT_BAD_INPUT,  # noqa: F401
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    TlbenchError,
    explain_unexpected,
)
from engine.core.events import JobFailed, JobFinished
from engine.core.jobs import JobControl, JobFn, run_job

# ------------------------------------------------------------------------------------- argument types


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An engine.core.checks parser as an argparse type: its ValueError's message (which names the text)
    becomes argparse's "argument --epochs: 0 must be 1 or more", instead of "invalid positive_int value"."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    return convert


positive_int = argument_type(checks.positive_int)
non_negative_int = argument_type(checks.non_negative_int)
positive_float = argument_type(checks.positive_float)
non_negative_float = argument_type(checks.non_negative_float)
fraction = argument_type(checks.fraction)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


# ------------------------------------------------------------------------------------- output


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)


_json_objects = 0  # JSON objects printed by this command so far: the contract is exactly one


def print_json(obj: Any) -> None:
    global _json_objects
    _json_objects += 1
    out = sys.__stdout__
    if out is None:  # started without a stdout (pythonw, a closed descriptor): nowhere to print it
        return
    out.write(json.dumps(obj, indent=2, default=_json_default) + "\n")
    out.flush()


def _json_default(obj: Any):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


def print_error_json(title: str, message: str, kind: str, exit_code: int, **extra: Any) -> None:
    print_json({"error": {"title": title, "message": message, "kind": kind, "exit_code": exit_code}, **extra})


def show_error(title: str, message: str) -> None:
    from rich.panel import Panel
    from rich.text import Text

    # soft_wrap=False: the console's soft wrap would crop the panel's lines, hiding URLs and fixes
    stderr_console().print(Panel(Text(message), title=f"[bold red]{title}", border_style="red", expand=False),
                           soft_wrap=False)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP outside a job: ends the command like Ctrl+C does, with 128+signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


@contextlib.contextmanager
def signals_stop_the_command():
    """Outside a job, SIGTERM and SIGHUP (an SSH session dropping) end the command the way Ctrl+C does: a
    panel, a JSON object under --json, exit 128+signal. By default they would kill the process silently,
    leaving a script without the JSON it waits for. Jobs install their own handlers (stop_on_signals)."""
    old = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            old[sig] = signal.signal(sig, _raise_stopped)
        except ValueError:  # not the main thread (a library caller): leave signals alone
            break
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def handle_errors(args: argparse.Namespace, fn: Callable[[], int]) -> int:
    """Run a subcommand so that every ending is reported the same way: an error of any kind becomes a panel
    on stderr and, under --json, exactly one JSON object on stdout; never a traceback (TLBENCH_DEBUG=1 adds
    it). The exit code is the error's (engine.core.errors: 2 bad input, 1 failed, 128+signal stopped)."""
    global _json_objects
    _json_objects = 0
    try:
        with signals_stop_the_command():
            code = fn()
    except BrokenPipeError:
        # stdout closed early (`tlbench scan --json | head -1`): nobody is left to read an error. Point stdout
        # at /dev/null so the interpreter's final flush does not complain, and exit as `yes | head` would.
        with contextlib.suppress(OSError):
            if sys.__stdout__ is not None:  # (it was there: a pipe broke)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())
        return EXIT_SIGNAL_BASE + getattr(signal, "SIGPIPE", 13)
    except KeyboardInterrupt as err:  # Ctrl+C, or SIGTERM/SIGHUP as Stopped, outside a job
        signum = getattr(err, "signum", signal.SIGINT)
        return report_stop(args, EXIT_SIGNAL_BASE + signum, "Interrupted",
                           f"Stopped by {signal_name(signum)} before the command finished.")
    except Exception as err:  # noqa: BLE001 - the one place an unexpected error becomes a message
        return report_failure(args, err)
    if code > EXIT_SIGNAL_BASE and _json_objects == 0:
        # A job stopped by a signal ends without an error and, for most jobs, without a result.
        return report_stop(args, code, "Stopped", f"Stopped by {signal_name(code - EXIT_SIGNAL_BASE)} before it "
                           "finished.", panel=False)  # the progress display already said "stopped"
    if code != EXIT_OK and getattr(args, "json", False) and _json_objects == 0:  # a subcommand's oversight
        print_error_json("Failed", f"The command ended with exit code {code} and no result.", "error", code)
    return code


def signal_name(signum: int) -> str:
    try:
        return "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def report_stop(args: argparse.Namespace, code: int, title: str, message: str, panel: bool = True) -> int:
    # After SIGHUP the terminal may be gone: failing to say so must not change the exit code, and a dead
    # stderr must not cost the script its JSON on stdout (or the other way round).
    if panel:
        with contextlib.suppress(OSError):
            show_error(title, message)
    if getattr(args, "json", False) and _json_objects == 0:
        with contextlib.suppress(OSError):
            print_error_json(title, message, "Stopped", code, stopped=True)
    return code


def report_failure(args: argparse.Namespace, err: BaseException, title: str | None = None) -> int:
    """The panel on stderr and, under --json, the error object; returns the error's exit code."""
    if isinstance(err, TlbenchError):
        title, message, code = title or err.title, err.message, err.exit_code
    else:  # not ours: out of memory, disk full, a bug
        title, message = explain_unexpected(err)
        code = EXIT_FAILED
        if os.environ.get("TLBENCH_DEBUG"):
            traceback.print_exception(err, file=sys.stderr)
    with contextlib.suppress(OSError):  # as in report_stop
        show_error(title, message)
    if getattr(args, "json", False) and _json_objects == 0:  # a result already out stays the one object
        with contextlib.suppress(OSError):
            print_error_json(title, message, type(err).__name__, code)
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
        control.stop()
        name = signal.Signals(signum).name
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone; the stop must still happen
            sys.stderr.write(f"\n{name}: stopping after the current step (saving state). Send it again to abort.\n")

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


def job_result(final: JobFinished) -> dict:
    """A finished job's result as the command prints it: a job stopped by a signal says so ("stopped": true)."""
    result = dict(final.result)
    if final.reason == "stopped":
        result["stopped"] = True
    return result


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
        code = EXIT_SIGNAL_BASE + (received[0] if received else signal.SIGINT)
        return code, final, received
    return EXIT_OK, final, received
