"""The tlbench workbench (Textual). Talks to the engine only through jobs and events.

`create_app(...)` builds it (tests reuse it); `run_app(argv)` is what the `tlbench` command calls.
Start-up never waits for PyTorch: the first screen needs only the dataset scan; the heavy engine modules
are imported on a background thread once the first frame is on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import NoReturn

from textual import events, on
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from engine.core.errors import EXIT_BAD_INPUT, ConfigError
from engine.core.paths import demo_dataset
from tui.attack.screen import AttackScreen
from tui.base_app import WorkbenchApp
from tui.data.screen import DataScreen
from tui.dream.screen import DreamScreen
from tui.jobs import ENDED, STOPPING, RunningJob, import_engine
from tui.keys import HelpScreen, KeysProvider
from tui.model.screen import ModelScreen
from tui.results.screen import ResultsScreen
from tui.runs.screen import RunsScreen
from tui.terminal import unwatch, watch
from tui.train.screen import TrainScreen
from tui.widgets import pictures

SCREENS_GROUP = Binding.Group("", compact=True)  # the tab bar names them


def warm_engine() -> None:
    """Import torch and the engine on a background thread, so the Model and Train screens open at once."""
    try:
        import_engine()
    except Exception:  # noqa: BLE001 - a broken import surfaces (with its message) when a screen needs it
        pass


class KeyHandled(Message):
    """Posted right behind a key to the widget the key went to; it reaches the app once that widget and its
    parents have handled the key (queues are first in, first out). See TlbenchApp.on_event."""

    def __init__(self, serial: int, target, rounds_left: int) -> None:
        super().__init__()
        self.serial, self.target, self.rounds_left = serial, target, rounds_left


class TlbenchApp(WorkbenchApp):
    TITLE = "tlbench"
    CSS_PATH = "tlbench.tcss"
    MODES = {
        "data": DataScreen, "model": ModelScreen, "train": TrainScreen, "results": ResultsScreen,
        "attack": AttackScreen, "dream": DreamScreen, "runs": RunsScreen,
    }
    DEFAULT_MODE = "data"
    # Nothing is focused on arrival, so keys reach the screen; screens focus their main list themselves.
    AUTO_FOCUS = None
    # Screens get -short below 30 rows (80x24 over SSH), so the stylesheet can give space to what matters.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    COMMANDS = App.COMMANDS | {KeysProvider}
    BINDINGS = [
        Binding("1", "switch_mode('data')", "Data", id="screen.data", group=SCREENS_GROUP,
                tooltip="Classes, thumbnails, unusable files, the split"),
        Binding("2", "switch_mode('model')", "Model", id="screen.model", group=SCREENS_GROUP,
                tooltip="Backbone, mode and hyperparameters"),
        Binding("3", "switch_mode('train')", "Train", id="screen.train", group=SCREENS_GROUP,
                tooltip="Start, pause and stop training; live log and curves"),
        Binding("4", "switch_mode('results')", "Results", id="screen.results", group=SCREENS_GROUP,
                tooltip="Confusion matrix, per-class accuracy, top losses"),
        Binding("5", "switch_mode('attack')", "Attack", id="screen.attack", group=SCREENS_GROUP,
                tooltip="Adversarial examples against the chosen run"),
        Binding("6", "switch_mode('dream')", "Dream", id="screen.dream", group=SCREENS_GROUP,
                tooltip="Render the image a class wants to see"),
        Binding("7", "switch_mode('runs')", "Runs", id="screen.runs", group=SCREENS_GROUP,
                tooltip="Past runs: config, curves, report; use one's model"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Every key of every screen"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit (a running job is stopped first)"),
        # Shown in the footer's flow like every other key (Textual's own palette key is docked over it).
        Binding("ctrl+p", "command_palette", "Palette", id="app.palette", tooltip="Search every action"),
    ]

    # Seconds to wait for running jobs to stop when quitting; after that the app exits anyway. The README
    # promises an exit within 5 s: this, plus the terminal's restoration (~0.3 s), stays under it.
    QUIT_TIMEOUT = 4.0
    # After a hang-up or SIGTERM nobody is waiting at the screen, and leaving mid-save would leave the
    # checkpoint half-written and status.json "running": the app waits for its jobs to finish saving, however
    # long a big checkpoint on a slow disk takes, up to this bound for a job that hangs.
    SIGNAL_QUIT_TIMEOUT = 300.0
    # Jobs that only read: quitting stops them but does not wait (a registry load can sit in an import).
    READ_ONLY_JOBS = frozenset({"scan", "split", "registry", "runs", "results", "model-info"})

    # Keys typed in a burst (a laggy SSH link delivers them together) must land where focus is *after* the
    # keys before them: Textual forwards each key to the focused widget's queue at once, so "tab 0.002"
    # would put 0.002 in the field tab was leaving. The app holds the next key until the previous one was
    # handled: a KeyHandled marker goes to the same widget right behind the key and bubbles back to the app;
    # a second round covers what the key's action posted (Enter -> Submitted -> the field gives up focus).
    KEY_ROUNDS = 2
    # A marker can be lost when its widget is removed (a modal closing); then the next key waits this long.
    KEY_GATE_TIMEOUT = 0.3

    def __init__(self, dataset: Path | None, runs_dir: str | None = None, **options) -> None:
        """options: config, blink, color_hint, warm, state_file (tui.base_app.WorkbenchApp)."""
        super().__init__(dataset, runs_dir, **options)
        self.quitting = False
        self.signal_exit = 0  # 128 + the signal when a hangup or SIGTERM ended the app
        self._key_serial = 0
        self._key_in_flight: tuple[int, float] | None = None  # (serial, when it was forwarded)
        self._held_keys: deque[events.Event] = deque()
        self._key_timer = None
        start_process_helper()

    def on_mount(self) -> None:
        if not self.is_headless:
            watch(self, self._terminal_gone)
        if self.warm:
            self.call_after_refresh(self._start_warm_up)
        if self.color_hint:
            self.call_after_refresh(self._truecolor_hint)
        if self.state_notice:
            self.notify(self.state_notice, title="State file", severity="warning", timeout=10)
        if self.state.run_dir is None:
            threading.Thread(target=self._adopt_newest_run, name="tlbench-runs", daemon=True).start()
        # Every screen's jobs show their state in the tab bar, also when a screen changed a job's control
        # without saying so (4 Hz; nothing is repainted unless the text changes).
        self.set_interval(0.25, self.refresh_job_status)

    def _start_warm_up(self) -> None:
        threading.Thread(target=warm_engine, name="tlbench-warm-up", daemon=True).start()
        self.ensure_registry()  # the Model screen's table is ready before its first visit

    # ------------------------------------------------------------------------------------ keys in order

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            if self._key_in_flight is not None:
                if time.monotonic() - self._key_in_flight[1] < self.KEY_GATE_TIMEOUT:
                    self._held_keys.append(event)
                    if self._key_timer is None:
                        self._key_timer = self.set_timer(self.KEY_GATE_TIMEOUT, self._key_gate_expired)
                    return
                self._key_in_flight = None  # its marker was lost: go on
            await self._deliver_key(event)
            return
        await super().on_event(event)

    async def _deliver_key(self, event: events.Event) -> None:
        target = self.focused or self.screen
        await super().on_event(event)
        if event.is_forwarded:  # queued for a widget (not taken by a priority binding): hold the next key
            self._key_serial += 1
            if target.post_message(KeyHandled(self._key_serial, target, self.KEY_ROUNDS - 1)):
                self._key_in_flight = (self._key_serial, time.monotonic())

    async def _release_keys(self) -> None:
        self._key_in_flight = None
        if self._key_timer is not None:
            self._key_timer.stop()
            self._key_timer = None
        while self._held_keys and self._key_in_flight is None:
            await self._deliver_key(self._held_keys.popleft())

    @on(KeyHandled)
    async def _key_handled(self, message: KeyHandled) -> None:
        message.stop()
        if self._key_in_flight is None or message.serial != self._key_in_flight[0]:
            return
        target = message.target
        if message.rounds_left and target.is_attached and target.post_message(
                KeyHandled(message.serial, target, message.rounds_left - 1)):
            return
        await self._release_keys()

    async def _key_gate_expired(self) -> None:
        self._key_timer = None
        if self._key_in_flight is not None and time.monotonic() - self._key_in_flight[1] >= self.KEY_GATE_TIMEOUT:
            await self._release_keys()
        elif self._held_keys:
            self._key_timer = self.set_timer(self.KEY_GATE_TIMEOUT, self._key_gate_expired)

    # ------------------------------------------------------------------------------------ actions

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Stop every running job and wait for it to save and end while the UI keeps painting: QUIT_TIMEOUT at
        most after `q`, SIGNAL_QUIT_TIMEOUT after a signal (nobody is waiting at the screen then)."""
        if self.quitting:
            return
        self.quitting = True
        self.jobs.stop_all()
        waited = [j for j in self.jobs.running() if j.name not in self.READ_ONLY_JOBS and j.state not in ENDED]
        if self.signal_exit == 128 + signal.SIGHUP and not self.is_headless:
            self._leave_without_a_terminal(self.signal_exit, waited)
        timeout = self.SIGNAL_QUIT_TIMEOUT if self.signal_exit else self.QUIT_TIMEOUT
        if waited:
            # On screen at once: the tab bar says "stopping…" and so does a toast; the Train screen follows
            # the tab bar's text. Then wait (painting) for the jobs to save and end.
            names = ", ".join(sorted({j.name for j in waited}))
            self.notify(f"Quitting: {names} {STOPPING} (checkpoints are saved; at most "
                        f"{timeout:.0f} s)", title="Quitting", timeout=timeout + 1)
            self.refresh_job_status()
            deadline = time.monotonic() + timeout
            while any(not j.done.is_set() for j in waited) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        self.exit(return_code=self.signal_exit)

    def _leave_without_a_terminal(self, code: int, waited: list[RunningJob]) -> NoReturn:
        """The terminal hung up: wait for the stopped jobs to save and end (their checkpoint, their run's
        status.json; SIGNAL_QUIT_TIMEOUT at most), then end the process. The wait blocks the event loop on
        purpose: nothing can be shown, and a repaint written to the dead terminal would fill Textual's output
        queue, whose thread died on its first write. Textual's shutdown is skipped for the same reason: it
        restores the terminal's modes by writing to it, and waited forever for room in that full queue
        (seen: 1 exit in ~10 hung). The state file is written here, as on_unmount would."""
        deadline = time.monotonic() + self.SIGNAL_QUIT_TIMEOUT
        for job in waited:  # job threads post their events without waiting for this loop
            job.done.wait(max(0.0, deadline - time.monotonic()))
        self.on_unmount()
        sys.stderr.flush()
        os._exit(code)

    def _terminal_gone(self, sig: int) -> None:
        """SIGHUP, SIGTERM or a hung-up terminal: quit as q does (jobs stop and save), exit 128 + signal."""
        if not self.quitting:
            self.signal_exit = 128 + int(sig)
            self.run_worker(self.action_quit(), exclusive=False)

    def on_unmount(self) -> None:
        if not self.is_headless:
            unwatch()
        self.jobs.stop_all()
        self.thumbnails.shutdown()
        self.write_state_now()


def start_process_helper() -> None:
    """Start multiprocessing's resource tracker now, while sys.stderr is a real file.

    Scans of big folders check images in worker processes, and starting those needs the tracker; once the
    app runs, Textual's stand-in for sys.stderr has fileno() -1 and the tracker can no longer start ("bad
    value(s) in fds_to_keep"). The engine would fall back to threads, 5x slower on 50,000 files.
    """
    try:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    except Exception:  # noqa: BLE001 - only an optimisation; the scan falls back to threads
        pass


def create_app(dataset: str | os.PathLike | None = None, runs_dir: str | None = None, **options) -> TlbenchApp:
    """The app on `dataset` (the bundled demo when None); options: config, blink, color_hint, warm,
    state_file (default: tui.state.state_path()), pictures (default: what the environment says)."""
    path = Path(dataset).expanduser() if dataset else demo_dataset()
    return TlbenchApp(path, runs_dir, **options)


def run_app(argv: list[str]) -> NoReturn:
    """The workbench as the `tlbench` command runs it; ends the process with the app's exit code."""
    parser = argparse.ArgumentParser(prog="tlbench", description="Open the workbench on a dataset "
                                     "(the bundled demo digits when none is given). Subcommands: tlbench --help.")
    parser.add_argument("dataset", nargs="?", default=None)
    parser.add_argument("--runs-dir", default=None, help="where runs are written (default $TLBENCH_RUNS or ./runs)")
    args = parser.parse_args(argv)
    try:
        shown = pictures.at_start()  # asks the terminal now: once Textual runs, it reads every reply
    except ConfigError as err:
        print(f"tlbench: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    app = create_app(args.dataset, args.runs_dir, pictures=shown)
    # Our own loop: asyncio.run would wait, without a limit, for worker threads when it shuts down.
    loop = asyncio.new_event_loop()
    try:
        app.run(loop=loop)
    finally:
        loop.close()
    code = app.return_code or 0
    unfinished = [j.name for j in app.jobs.running() if j.name not in app.READ_ONLY_JOBS]
    if unfinished and not app.jobs.join_all(0.5):
        # A job ignored the stop request (stuck in one long call); its run files are written atomically,
        # so leaving now loses at most the step in flight. Never hang the terminal on exit.
        print(f"tlbench: {', '.join(sorted(set(unfinished)))} did not stop in time; exiting anyway.",
              file=sys.stderr)
    # Leave without the interpreter's own teardown: with PyTorch loaded it took 2-4 s after the terminal
    # was restored (measured on 2 busy cores: run_app returned 0.26 s after q, the process ended 4 s later,
    # all in C finalisation), and a warm-up still importing torch would hold it further. Every job has been
    # stopped (or given up on, above), run files and the state file are written atomically, and the
    # terminal is restored: nothing is left for the teardown to do that matters.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
