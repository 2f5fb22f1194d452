"""What a fine-tuning checkpoint resumes: `TrainState`, torchvision's checkpoint dict as an object.

last.pt and best.pt hold the model, optimizer, scheduler and scaler states, the RNG states (every rank's under
torchrun), the completed epochs and how far the next one went (`step`, and its running sums `partial`), the
metrics history, the best epoch, early stopping's count and the files skipped so far. `state_dict()` writes
those keys and `load_state_dict()` reads them back; the job driver (engine.train.finetune) adds the run's
config and classes. The optimizer and scheduler belong to a phase (engine.train.recipe.plan_phases): a resumed
run's saved states load when the driver enters the phase they were saved in (`attach`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from engine.runtime import distributed as D
from engine.runtime.seeding import derived_seed

# A rank's own stream for dropout and stochastic depth: prepare() seeds every rank alike (they build the same
# model), then each draws its own numbers.
RANK_STREAM = 0x52414E4B


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as plain lists and tensors (weights_only can load them)."""
    version, state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": {"version": version, "state": torch.tensor(state, dtype=torch.int64, device="cpu"),
                   "gauss": gauss if gauss is not None else None},
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def no_partial() -> dict:
    """An epoch's running sums before its first step (Python numbers, host-side)."""
    return {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}


def no_best() -> dict:
    return {"val_acc": -1.0, "val_loss": math.inf, "epoch": 0}


@dataclass
class TrainState:
    """Where a fine-tuning run stands; everything in it but `best_logits` is in last.pt."""

    model: nn.Module
    scaler: torch.amp.GradScaler
    optimizer: torch.optim.Optimizer | None = None  # the current phase's (`attach`)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    phase: int = -1  # the phase the optimizer belongs to; -1 before the first is entered
    epoch: int = 0  # completed epochs (trained and validated)
    step: int = 0  # steps done of epoch + 1: mid-epoch after a stop, all of them when validation was stopped
    partial: dict = field(default_factory=no_partial)  # epoch + 1's sums so far on this rank (StepMeter.state)
    history: list[dict] = field(default_factory=list)  # metrics.jsonl's rows
    best: dict = field(default_factory=no_best)  # the best epoch's val_acc, val_loss and number
    bad_epochs: int = 0  # epochs since the best (early stopping)
    skipped: dict[str, str] = field(default_factory=dict)  # files that broke after the scan: path -> reason
    # the best epoch's validation (sample order, logits) for report.json: not saved, a resumed run without
    # them evaluates best.pt instead
    best_logits: tuple[list[int], torch.Tensor] | None = None
    _saved_phase: dict | None = field(default=None, repr=False)  # a resumed run's optimizer states, until used

    def state_dict(self, info: D.DistInfo) -> dict:
        """last.pt's and best.pt's keys. Under torchrun every rank calls this at the same point (it is a
        collective): each rank's RNG state (it draws its own dropout) and its part of a stopped epoch's sums are
        gathered; rank 0 writes them."""
        rng = rng_state()
        ranks = D.gather(info, {"rng": rng, "partial": dict(self.partial)}) if info.enabled else None
        assert self.optimizer is not None and self.scheduler is not None, "a checkpoint is saved within a phase"
        return {
            "epoch": self.epoch, "step": self.step, "partial": dict(self.partial),
            "partial_ranks": [r["partial"] for r in ranks] if ranks else None,
            "model_scope": "full", "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None, "phase": self.phase,
            "rng": rng, "rng_ranks": [r["rng"] for r in ranks] if ranks else None,
            "metrics": self.history[-1] if self.history else {}, "history": list(self.history),
            "best": dict(self.best), "bad_epochs": self.bad_epochs, "skipped": dict(self.skipped),
        }

    def load_state_dict(self, ckpt: dict, info: D.DistInfo, seed: int) -> None:
        """Back to where `ckpt` (a last.pt) stood: the model's weights, the counters, this rank's sums and RNG
        state. The optimizer, scheduler and scaler states wait for their phase (`attach`)."""
        self.model.load_state_dict(ckpt["model"])
        self.epoch = int(ckpt["epoch"])
        self.step = int(ckpt.get("step", 0))
        self.partial = dict(ckpt.get("partial") or no_partial())
        partials = ckpt.get("partial_ranks") or []
        if info.enabled and len(partials) == info.world_size:
            self.partial = dict(partials[info.rank])
        self.history = list(ckpt.get("history", []))
        self.best = dict(ckpt.get("best", self.best))
        self.bad_epochs = int(ckpt.get("bad_epochs", 0))
        self.skipped = dict(ckpt.get("skipped", {}))
        self.phase = -1
        self._saved_phase = {"phase": int(ckpt.get("phase", -1)), "optimizer": ckpt["optimizer"],
                             "scheduler": ckpt["scheduler"], "scaler": ckpt.get("scaler")}
        ranks = ckpt.get("rng_ranks") or []
        if info.enabled and len(ranks) == info.world_size:
            set_rng_state(ranks[info.rank])
        else:
            set_rng_state(ckpt["rng"])
            if info.enabled:  # another number of processes than the run had: each rank a stream of its own
                torch.manual_seed(derived_seed(seed, RANK_STREAM, info.rank, self.epoch, self.step))

    def epoch_validated(self, epoch: int) -> None:
        """Epoch `epoch` trained and validated: the next one starts from its first step."""
        self.epoch, self.step, self.partial = epoch, 0, no_partial()

    def attach(self, phase: int, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
        """The optimizer and scheduler of `phase`, just built. A resumed run's saved states load into the phase
        they were saved in; a later phase starts afresh, as it did in the uninterrupted run."""
        self.phase, self.optimizer, self.scheduler = phase, optimizer, scheduler
        saved, self._saved_phase = self._saved_phase, None
        if saved is not None and saved["phase"] == phase:
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None:  # lr-find steps without one, and never resumes
                scheduler.load_state_dict(saved["scheduler"])
            if saved["scaler"]:
                self.scaler.load_state_dict(saved["scaler"])
