"""Turning engine events into the Train screen's numbers: epoch, step, images/s, ETA, and the progress bar
of the current phase (pure, tested)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.events import BatchEnded, EpochEnded, LogLine, ProgressAdvanced
from tui.widgets.text import clock

TRAINING_PHASES = ("epochs", "train", "val")


@dataclass
class TrainProgress:
    """What a training job has reported so far. `planned_epochs` comes from the settings the job started
    with, so the bar is right before the first epoch ends (fine-tuning reports steps long before that)."""

    planned_epochs: int = 0
    phase: str = ""
    done: float = 0
    total: float | None = None
    unit: str = "images"
    rate: float | None = None
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None
    between_phases: bool = False  # a phase finished and the next one has not reported yet
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    def update(self, event) -> None:
        if isinstance(event, ProgressAdvanced):
            if event.phase != self.phase:
                self.rate = None  # a new phase: its own numbers only
            self.phase, self.done, self.total, self.unit = event.phase, event.done, event.total, event.unit
            self.rate = event.rate
            self.between_phases = False
        elif isinstance(event, BatchEnded):
            if event.phase != self.phase and self.phase not in TRAINING_PHASES:
                self.rate = None
            self.phase = event.phase
            self.epoch, self.step, self.steps, self.loss = event.epoch, event.step, event.steps, event.loss
            if event.images_per_s:
                self.rate, self.unit = event.images_per_s, "images"
            self.between_phases = False
        elif isinstance(event, EpochEnded):
            self.phase = "epochs"
            self.rate = event.metrics.get("images_per_s")  # the extraction rate no longer applies
            self.unit = "images"
            self.epoch, self.epochs = event.epoch, event.epochs
            self.step = self.steps
            self.epoch_seconds.append(event.seconds)
            self.history.append({"epoch": event.epoch, **event.metrics})
            self.between_phases = False
        elif isinstance(event, LogLine) and self.phase_finished:
            # "extracting features …", "backbone: …": the next phase is being prepared
            self.between_phases = True

    @property
    def total_epochs(self) -> int:
        return self.epochs or self.planned_epochs

    @property
    def phase_finished(self) -> bool:
        return (self.phase not in TRAINING_PHASES and bool(self.total) and self.done >= (self.total or 0))

    @property
    def fraction(self) -> float | None:
        """Progress of the current phase, 0..1 (None before any phase reported or while between phases):
        a scan or a feature extraction by its items, training by its epochs (steps count within one)."""
        if self.between_phases or not self.phase:
            return None
        if self.phase not in TRAINING_PHASES:
            return min(1.0, self.done / self.total) if self.total else None
        epochs = self.total_epochs
        if not epochs:
            return None
        within = self.step / self.steps if self.steps else 0.0
        done = self.epoch if self.phase == "epochs" else max(0, self.epoch - 1) + within
        return min(1.0, done / epochs)

    @property
    def bar_label(self) -> str:
        """What the bar measures: 'scan', 'extract', 'training'; 'preparing' between phases."""
        if self.between_phases:
            return "preparing"
        if not self.phase:
            return "starting"
        return "training" if self.phase in TRAINING_PHASES else self.phase

    @property
    def eta(self) -> float | None:
        if self.phase not in TRAINING_PHASES:
            if self.total and self.rate:
                return max(0.0, (self.total - self.done) / self.rate)
            return None
        epochs = self.total_epochs
        if not epochs or not self.epoch_seconds:
            return None
        per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        remaining = epochs - self.epoch if self.phase == "epochs" else epochs - self.epoch + 1
        if self.phase != "epochs" and self.steps:
            remaining -= self.step / self.steps
        return max(0.0, remaining * per_epoch)

    def line(self, eta: bool = True) -> str:
        """The key numbers first (they must survive 80 columns): epoch, val acc, loss, then the rest."""
        if self.between_phases:
            return f"{self.phase} done · preparing the next step …"
        parts = []
        training = self.phase in TRAINING_PHASES
        if training and self.total_epochs:
            parts.append(f"epoch {self.epoch}/{self.total_epochs}")
        elif training and self.epoch:
            parts.append(f"epoch {self.epoch}")
        if self.history:
            last = self.history[-1]
            if isinstance(last.get("val_acc"), float):
                parts.append(f"val acc {last['val_acc']:.3f}")
        if self.loss is not None and self.phase in ("train", "val"):
            parts.append(f"loss {self.loss:.4f}")
        if self.steps and self.phase in ("train", "val"):
            parts.append(f"step {self.step}/{self.steps}")
        if not training and self.phase and self.total:
            parts.append(f"{self.phase} {self.done:.0f}/{self.total:.0f} {self.unit}")
        if self.rate:
            parts.append(f"{self.rate:.1f} {'img' if self.unit == 'images' else self.unit}/s")
        remaining = self.eta if eta else None
        if remaining is not None:
            parts.append(f"ETA {clock(remaining)}")
        return " · ".join(parts)
