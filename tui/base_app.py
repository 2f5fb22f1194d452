"""What every screen and widget of the workbench uses of the app: the shared state (and the file that remembers
it), the running jobs, the thumbnail cache, the backbone registry loaded in the background, the job status in the
tab bar, the error modal, and the terminal's colours.

The app itself (tui.app.TlbenchApp: the screens, the keys, quitting) builds on this class; screens and widgets
reach it through `workbench_of(node)`, so no screen imports tui.app (it imports every screen).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from textual.app import App
from textual.dom import DOMNode
from textual.filter import LineFilter
from textual.reactive import reactive

from engine.core.jobs import JobContext, JobControl
from engine.core.paths import cache_dir
from engine.core.runs import runs_root
from engine.data.images import load_rgb
from tui.engine_calls import available_backbones, backbone_info
from tui.errors import ErrorModal, describe_error
from tui.jobs import RUNNING, JobRegistry, RunningJob, import_engine, yield_cpu_to_the_ui
from tui.state import Workbench, load_state, newest_run, save_state, state_path
from tui.widgets.pictures import KeepControls, Pictures, from_env
from tui.widgets.thumbnails import ThumbnailCache

# A training job: it runs with `ctx` and calls `planned(epochs)` once it knows how many epochs it will run.
TrainJobFn = Callable[[JobContext, Callable[[int], None]], "dict[str, Any] | None"]


@runtime_checkable
class Trainer(Protocol):
    """The screen of the "train" mode: it runs a training job with its log, curves and progress."""

    def start(self, job_fn: TrainJobFn, status: str, history: list[dict] | None = None) -> RunningJob: ...


def load_thumbnail(path, min_side: int):
    """Decode for display: reduced-size JPEG decoding, EXIF orientation, any mode to RGB."""
    return load_rgb(path, min_size=max(8, min_side))


def backbone_rows(check=None) -> list[dict]:
    """The registry's rows for the Model screen (imports torch and torchvision: seconds; loaded in the
    background)."""
    rows = []
    for name in available_backbones():
        if check is not None:
            check()
        rows.append(backbone_info(name))
    return rows


class WorkbenchApp(App):
    job_status: reactive[str] = reactive("")
    # Bumped when the backbone registry has loaded (or failed to) on its background thread.
    registry_version: reactive[int] = reactive(0)

    # Seconds between a change of the settings (or the current run) and writing the state file.
    SAVE_DELAY = 0.5

    def __init__(self, dataset: Path | None, runs_dir: str | None = None, *, config: dict | None = None,
                 blink: bool = True, color_hint: bool = True, warm: bool = True,
                 state_file: Path | None = None, pictures: Pictures | None = None) -> None:
        super().__init__()
        # The last settings and the current run, remembered across restarts; `config` given here wins.
        self.state_file = state_file or state_path()
        saved, self.state_notice = load_state(self.state_file)
        run_dir = Path(saved["run_dir"]) if saved.get("run_dir") else None
        if run_dir is not None and not (run_dir / "config.json").is_file():
            run_dir = None  # deleted or moved since: Results, Attack and Dream must not point at nothing
        self.state = Workbench(dataset, runs_dir, config={**saved.get("config", {}), **(config or {})},
                               run_dir=run_dir)
        self.state.on_change = self._state_changed
        self._written = self.state.remembered()  # what the file holds (or would): unchanged is not rewritten
        self._save_timer = None
        self._save_lock = threading.Lock()
        self._registry_thread: threading.Thread | None = None
        self.registry_outcome: tuple[BaseException | None, list[dict] | None] | None = None
        self.jobs = JobRegistry()
        # Kitty, Sixel or half blocks (tui/widgets/pictures.py); every picture widget draws from this cache
        self.pictures = pictures or from_env()
        self.thumbnails = ThumbnailCache(load_thumbnail, pictures=self.pictures)
        self._kept_filters: dict[int, KeepControls] = {}
        self.blink = blink
        self.color_hint = color_hint
        self.color_hint_checked = False
        self.warm = warm
        self._statuses: dict[str, str] = {}

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters, wrapped so that Sixel and Kitty sequences keep their zero width (KeepControls)."""
        filters = super().get_line_filters()
        if not self.pictures.graphics:
            return filters
        kept = self._kept_filters
        for inner in filters:
            if id(inner) not in kept:
                kept[id(inner)] = KeepControls(inner)
        return [kept[id(inner)] for inner in filters]

    # ------------------------------------------------------------------------------------ jobs

    def begin_job(self, name: str) -> RunningJob:
        """Register a job on the UI thread before its worker starts, so quitting can always stop it."""
        return self.jobs.begin(name, JobControl())

    def set_job_status(self, job: str, text: str) -> None:
        """What the tab bar shows on the right while a job runs ('● train 3/30'); '' removes it. The job's
        state (paused, stopping…) is added from the job itself (tui.jobs.RunningJob.state)."""
        if text:
            self._statuses[job] = text
        else:
            self._statuses.pop(job, None)
        self.refresh_job_status()

    def refresh_job_status(self) -> None:
        states = {j.name: j.state for j in self.jobs.running()}
        parts = []
        for job, text in self._statuses.items():
            state = states.get(job, RUNNING)
            parts.append(text if state == RUNNING else f"{text} · {state}")
        status = ("● " + " · ".join(parts)) if parts else ""
        if status != self.job_status:
            self.job_status = status

    def show_error(self, error: BaseException, title: str | None = None) -> None:
        self.push_screen(ErrorModal(*describe_error(error, title)))

    async def train_on_screen(self, job_fn: TrainJobFn, status: str, history: list[dict] | None = None) -> RunningJob:
        """Show the Train screen and run `job_fn` there as the workbench's training job (t on the Model
        screen, R on the Runs screen): its log, curves and progress show it, space pauses and s stops it.
        `history`: the epochs a resumed run already has (metrics.jsonl rows), drawn before the new ones."""
        await self.switch_mode("train")
        trainer = self.screen
        if not isinstance(trainer, Trainer):
            raise TypeError(f"the train mode shows {type(trainer).__name__}, which runs no training")
        return trainer.start(job_fn, status, history)

    # ------------------------------------------------------------------------------------ the registry

    def ensure_registry(self) -> None:
        """Load the backbone registry on a background thread, once (it imports torch and torchvision)."""
        if self._registry_thread is None:
            self._registry_thread = threading.Thread(target=self._load_registry, name="tlbench-registry",
                                                     daemon=True)
            self._registry_thread.start()

    def _load_registry(self) -> None:
        yield_cpu_to_the_ui()  # like a job: the interface keeps the CPU it needs meanwhile
        try:
            import_engine()  # under the import lock: the warm-up may be importing torch right now
            # Each row builds a model on the meta device (~0.2 s of Python holding the GIL): a pause between
            # rows lets a key press that arrives meanwhile be handled sooner.
            outcome: tuple = (None, backbone_rows(lambda: time.sleep(0.02)))
        except Exception as err:  # noqa: BLE001 - shown by the Model screen with the error modal
            outcome = (err, None)
        if not self.is_running or self._loop is None or self._loop.is_closed():
            return  # the app closed meanwhile (a call now would leave its coroutine never awaited)
        try:
            self.call_from_thread(self._registry_loaded, outcome)
        except RuntimeError:  # it closed just now
            pass

    def _registry_loaded(self, outcome: tuple) -> None:
        self.registry_outcome = outcome
        self.registry_version += 1

    # ------------------------------------------------------------------------------------ remembered state

    def _adopt_newest_run(self) -> None:
        """No run remembered: the newest run with a model becomes current (Results, Attack, Dream show it)."""
        run = newest_run(runs_root(self.state.runs_dir))
        if run is not None:
            try:
                self.call_from_thread(self._adopt_run, run)
            except RuntimeError:  # the app closed meanwhile
                pass

    def _adopt_run(self, run: Path) -> None:
        if self.state.run_dir is None:
            self.state.update(run_dir=run)

    def _state_changed(self) -> None:
        """Settings or the current run changed: write the state file soon (once for a burst of changes)."""
        if self._save_timer is None and self.is_running:
            self._save_timer = self.set_timer(self.SAVE_DELAY, self._save_soon)

    def _save_soon(self) -> None:
        self._save_timer = None
        state = self.state.remembered()
        if state == self._written:  # a change of what is not remembered (the dataset scan, say)
            return
        self._written = state
        threading.Thread(target=self._write_state, args=(state,), name="tlbench-state", daemon=True).start()

    def _write_state(self, state: dict) -> None:
        with self._save_lock:
            try:
                save_state(self.state_file, state)
            except OSError:
                pass  # a read-only home: the workbench works, it just does not remember

    def write_state_now(self) -> None:
        """A change not written yet: now, before the process ends."""
        if self._save_timer is not None:
            self._save_timer.stop()
            self._save_timer = None
            if self.state.remembered() != self._written:
                self._write_state(self.state.remembered())

    # ------------------------------------------------------------------------------------ colour

    @property
    def truecolor(self) -> bool:
        return self.console.color_system == "truecolor"

    def colour_note(self) -> str:
        if self.truecolor:
            return "Colour: truecolor."
        return (f"Colour: {self.console.color_system or 'none'} — previews are reduced to 256 colours. "
                "export COLORTERM=truecolor if your terminal supports it (see docs/usage.md, SSH tips).")

    def _truecolor_hint(self) -> None:
        """Once per machine: over SSH COLORTERM is often dropped and previews fall back to 256 colours."""
        self.color_hint_checked = True  # tests wait on this, not on a fixed delay
        if self.truecolor:
            return
        marker = cache_dir() / "hints" / "truecolor"
        if marker.exists():
            return
        self.notify("This terminal did not announce truecolor, so thumbnails use 256 colours. If it supports "
                    "24-bit colour: export COLORTERM=truecolor (over SSH: SendEnv/AcceptEnv COLORTERM).",
                    title="Colours", timeout=12)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("shown\n")
        except OSError:
            pass


def workbench_of(node: DOMNode) -> WorkbenchApp:
    """The workbench app a screen or widget runs in (its state, jobs, thumbnails and error modal)."""
    app = node.app
    if not isinstance(app, WorkbenchApp):
        raise TypeError(f"{type(node).__name__} runs in {type(app).__name__}, not the tlbench workbench")
    return app
