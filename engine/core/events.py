"""The typed event stream between a job and whoever watches it (CLI progress bar, workbench).

Events are frozen dataclasses named in the past tense. A job emits them through a `sink`; the engine never
calls the UI. Per-batch events are throttled at the source; epoch-level and final events are never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class JobStarted(Event):
    job: str
    description: str = ""
    run_dir: str | None = None


@dataclass(frozen=True)
class LogLine(Event):
    """A human-readable line for the live log."""

    text: str
    level: str = "info"


@dataclass(frozen=True)
class ProgressAdvanced(Event):
    """Work inside a phase that has no epoch structure (scanning, extracting features, downloading)."""

    phase: str
    done: float
    total: float | None
    unit: str = "images"
    rate: float | None = None  # units per second


@dataclass(frozen=True)
class BatchEnded(Event):
    epoch: int
    step: int
    steps: int
    loss: float
    images_per_s: float | None = None
    phase: str = "train"


@dataclass(frozen=True)
class EpochEnded(Event):
    epoch: int
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class CheckpointSaved(Event):
    path: str
    epoch: int
    best: bool = False


@dataclass(frozen=True)
class ImageRendered(Event):
    """An image a job produced (attack step, dream preview). `pixels` is HxWx3 uint8 bytes or a path."""

    kind: str
    step: int
    path: str | None = None
    width: int = 0
    height: int = 0
    pixels: bytes | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StepEnded(Event):
    """One optimisation step of an attack or a dream: values such as {"target_prob": 0.93, "loss": 0.1}."""

    kind: str  # "attack" | "dream" | "lr-find" …
    step: int
    steps: int
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateScored(Event):
    """One candidate of a comparison is done (scored, or failed with `row["error"]`): a leaderboard adds its row
    at once. `row` holds the JSON result row of `tlbench compare` (backbone, accuracy, accuracy_std, …)."""

    index: int  # 1-based, in the order the candidates were given
    total: int
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFinished(Event):
    reason: str  # "completed" | "stopped"
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFailed(Event):
    error: BaseException
    title: str = "Job failed"


Sink = Callable[[Event], None]


def null_sink(event: Event) -> None:
    """A sink that ignores everything (library use, tests that don't watch)."""
