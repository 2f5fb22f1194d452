"""The headless view of the event stream: a Rich progress display and log lines on stderr."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

from engine.core.events import (
    BatchEnded,
    CheckpointSaved,
    EpochEnded,
    Event,
    ImageRendered,
    JobFailed,
    JobFinished,
    LogLine,
    ProgressAdvanced,
)
from engine.fetch.downloads import human_bytes

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def format_metrics(metrics: dict) -> str:
    parts = []
    for k, v in metrics.items():
        if k in ("seconds",):
            continue
        if isinstance(v, float):
            v = "nan" if not math.isfinite(v) else (f"{v:.2e}" if k == "lr" or (v and abs(v) < 1e-3) else f"{v:.4f}")
        parts.append(f"{k} {v}")
    return "  ".join(parts)


class ProgressSink:
    """Callable sink; use as a context manager so the live display is torn down cleanly."""

    def __init__(self, enabled: bool = True):
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "ProgressSink":
        if self.live:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            class CountColumn(ProgressColumn):
                """'3/10' for steps and images, '12.3/755.0 MB' for downloads."""

                def __init__(self):
                    super().__init__()
                    self.steps, self.bytes = MofNCompleteColumn(), DownloadColumn()

                def render(self, task):
                    return (self.bytes if task.fields.get("unit") == "bytes" else self.steps).render(task)

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), CountColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=self.console, transient=False,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone (see _print)
                self.progress.stop()

    def _print(self, text: str, style: str = "") -> None:
        if not self.enabled:
            return
        try:
            self.console.print(text, style=style, markup=False)
        except OSError:
            # stderr is gone (an SSH session dropped: SIGHUP asked the job to stop). Showing progress must not
            # fail the job before it has saved its state, so the display goes quiet instead.
            self.enabled = False

    def _task(self, key: str, description: str, total: float | None, unit: str = "") -> TaskID | None:
        if self.progress is None:
            return None
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total, rate="", unit=unit)
        return self.tasks[key]

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogLine):
            self._print(event.text, "yellow" if event.level == "warning" else "dim")
        elif isinstance(event, ProgressAdvanced):
            task = self._task(f"p:{event.phase}", event.phase, event.total, event.unit)
            rate = ""
            if event.rate:
                rate = f"{event.rate / 1e6:.1f} MB/s" if event.unit == "bytes" else f"{event.rate:.1f} {event.unit}/s"
            if task is not None and self.progress is not None:  # (a task implies the display)
                self.progress.update(task, completed=event.done, total=event.total, rate=rate)
            elif event.total and event.done >= event.total:
                count = (f"{human_bytes(event.total)}" if event.unit == "bytes"
                         else f"{event.done:.0f}/{event.total:.0f} {event.unit}")
                self._print(f"{event.phase}: {count} {rate}".rstrip(), "dim")
        elif isinstance(event, BatchEnded):
            task = self._task(f"e:{event.phase}:{event.epoch}", f"epoch {event.epoch} {event.phase}", event.steps)
            if task is not None and self.progress is not None:
                rate = f"{event.images_per_s:.1f} img/s" if event.images_per_s else ""
                self.progress.update(task, completed=event.step, rate=f"loss {event.loss:.4f} {rate}")
        elif isinstance(event, EpochEnded):
            self._print(f"epoch {event.epoch}/{event.epochs}  {format_metrics(event.metrics)}  ({event.seconds:.1f}s)")
        elif isinstance(event, CheckpointSaved):
            pass  # one per epoch; the epoch line says enough
        elif isinstance(event, ImageRendered):
            if event.path:
                self._print(f"saved {event.path}", "dim")
        elif isinstance(event, JobFinished) and event.reason == "stopped":
            self._print("stopped", "yellow")
        elif isinstance(event, JobFailed):
            pass  # the error panel follows
