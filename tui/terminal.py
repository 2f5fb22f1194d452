"""The terminal going away: an SSH session dropping, a tmux pane killed, a SIGTERM.

Textual's input thread spins at 100% CPU once its terminal is gone without a SIGHUP (it reads end-of-file in
a loop), and the default SIGHUP action kills the process mid-step. Both end here instead: running jobs are
stopped (training saves last.pt) and the app exits with 128 + the signal, like the headless commands.
"""

from __future__ import annotations

import asyncio
import select
import signal
import sys

SIGNALS = (signal.SIGHUP, signal.SIGTERM)
CHECK_EVERY_S = 1.0


def hung_up(fd: int) -> bool:
    """True when the other end of the terminal (or pipe) on `fd` has closed."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return True


def stdin_fd() -> int | None:
    try:
        return sys.__stdin__.fileno() if sys.__stdin__ is not None else None
    except (OSError, ValueError):
        return None


def watch(app, on_gone) -> None:
    """Call on_gone(signal_number) on SIGHUP/SIGTERM, or on_gone(SIGHUP) when stdin hangs up."""
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        try:
            loop.add_signal_handler(sig, on_gone, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or not POSIX
            pass
    fd = stdin_fd()
    if fd is not None:
        app.set_interval(CHECK_EVERY_S, lambda: hung_up(fd) and on_gone(signal.SIGHUP))


def unwatch() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    for sig in SIGNALS:
        try:
            loop.remove_signal_handler(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
