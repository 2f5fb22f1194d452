"""Turning engine events into the Train screen's numbers: epoch, step, images/s, ETA (pure, tested)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.events import BatchEnded, EpochEnded, ProgressAdvanced


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class TrainProgress:
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
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    def update(self, event) -> None:
        if isinstance(event, ProgressAdvanced):
            self.phase, self.done, self.total, self.unit = event.phase, event.done, event.total, event.unit
            self.rate = event.rate
        elif isinstance(event, BatchEnded):
            self.phase = event.phase
            self.epoch, self.step, self.steps, self.loss = event.epoch, event.step, event.steps, event.loss
            if event.images_per_s:
                self.rate, self.unit = event.images_per_s, "images"
        elif isinstance(event, EpochEnded):
            self.phase = "epochs"
            self.rate = event.metrics.get("images_per_s")  # the extraction rate no longer applies
            self.unit = "images"
            self.epoch, self.epochs = event.epoch, event.epochs
            self.step = self.steps
            self.epoch_seconds.append(event.seconds)
            self.history.append({"epoch": event.epoch, **event.metrics})

    @property
    def fraction(self) -> float | None:
        """Overall progress of the current phase, 0..1."""
        if self.phase in ("scan", "extract") or (self.phase and self.phase not in ("epochs", "train", "val")):
            return self.done / self.total if self.total else None
        if self.epochs:
            within = self.step / self.steps if self.steps else 0.0
            done = self.epoch if self.phase == "epochs" else max(0, self.epoch - 1) + within
            return min(1.0, done / self.epochs)
        return None

    @property
    def eta(self) -> float | None:
        if self.phase not in ("epochs", "train", "val"):
            if self.total and self.rate:
                return max(0.0, (self.total - self.done) / self.rate)
            return None
        if not self.epochs or not self.epoch_seconds:
            return None
        per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        remaining = self.epochs - self.epoch if self.phase == "epochs" else self.epochs - self.epoch + 1
        if self.phase != "epochs" and self.steps:
            remaining -= self.step / self.steps
        return max(0.0, remaining * per_epoch)

    def line(self) -> str:
        parts = []
        if self.phase in ("epochs", "train", "val") and self.epochs:
            parts.append(f"epoch {self.epoch}/{self.epochs}")
        elif self.phase in ("epochs", "train", "val") and self.epoch:
            parts.append(f"epoch {self.epoch}")
        if self.steps and self.phase in ("train", "val"):
            parts.append(f"step {self.step}/{self.steps}")
        if self.phase not in ("", "epochs", "train", "val") and self.total:
            parts.append(f"{self.phase} {self.done:.0f}/{self.total:.0f} {self.unit}")
        if self.rate:
            parts.append(f"{self.rate:.1f} {'img' if self.unit == 'images' else self.unit}/s")
        if self.loss is not None and self.phase in ("train", "val"):
            parts.append(f"loss {self.loss:.4f}")
        if self.history:
            last = self.history[-1]
            if isinstance(last.get("val_acc"), float):
                parts.append(f"val acc {last['val_acc']:.3f}")
        eta = self.eta
        if eta is not None:
            parts.append(f"ETA {clock(eta)}")
        return " · ".join(parts)
