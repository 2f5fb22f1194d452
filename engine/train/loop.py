"""One epoch of fine-tuning and one validation pass, in the shape of torchvision's classification reference
(`train_one_epoch`, `evaluate`) and nanoGPT's loop: plain functions over a `Step` (the model, its optimizer
and how it runs) and a loader whose collate_fn has already dropped the files that broke since the scan
(engine.train.augment.DropBadFiles). `train_step` is also what lr-find runs (engine.train.lr_find).

Losses and accuracy stay on the device and are read back only at sync points (StepMeter, SyncSchedule), not
every step; under torchrun the ranks agree there on stopping, on a NaN and on the next interval, in one
all-reduce, so they all sync, and stop, at the same step.
"""

from __future__ import annotations

import time
from collections.abc import Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from engine.core.errors import JobError
from engine.core.events import BatchEnded
from engine.core.jobs import JobContext, JobStopped
from engine.runtime import distributed as D
from engine.runtime.precision import autocast
from engine.train.recipe import batchnorm_statistics_kept
from engine.train.state import TrainState


class TrainingDiverged(JobError):
    title = "Training diverged"


class StepMeter:
    """An epoch's training loss and accuracy sums, kept on the device between reads.

    Reading a value a GPU computed (`loss.item()`) waits for the GPU to finish everything queued, so Python
    cannot run ahead and queue the next step while it computes. The loop therefore adds each step's loss and
    correct count on the device and reads them back only at sync points (SyncSchedule). A non-finite loss is
    noted on the device, with its step, and reported at the next read. Sums are float32 on the device (no
    float64 there: MPS has none) and restart after each read; the totals are Python floats."""

    def __init__(self, device: torch.device, loss: float = 0.0, correct: float = 0.0, seen: float = 0):
        self.loss, self.correct, self.seen = float(loss), float(correct), int(seen)
        self.last_loss = float("nan")
        self.bad_step, self.bad_loss = 0, float("nan")  # the first step whose loss was not finite (0: none)
        # [loss x images, correct, last loss, first non-finite step (0: none), its loss]
        self._acc = torch.zeros(5, device=device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, step: int) -> None:
        with torch.no_grad():
            value = loss.float()
            acc = self._acc
            acc[0] += value * len(y)
            acc[1] += (logits.argmax(1) == y).sum()
            acc[2] = value
            first = (acc[3] == 0) & ~torch.isfinite(value)
            acc[3] = torch.where(first, step, acc[3])
            acc[4] = torch.where(first, value, acc[4])
        self.seen += len(y)

    def flags(self, stop: bool, interval: int) -> torch.Tensor:
        """[stop, a non-finite loss seen, the sync interval this rank proposes], on the device, for the ranks
        to agree on with one all-reduce (max)."""
        out = torch.tensor([float(stop), 0.0, float(interval)], device=self._acc.device)
        out[1] = (self._acc[3] > 0).float()
        return out

    def read(self, extra: torch.Tensor | None = None) -> list[float]:
        """Move the device sums into the totals (one transfer, `extra` riding along); returns `extra`'s values."""
        values = (self._acc if extra is None else torch.cat([extra, self._acc])).tolist()
        k = 0 if extra is None else len(extra)
        loss, correct, last, bad_step, bad_loss = values[k:]
        self.loss += loss
        self.correct += correct
        self.last_loss = last
        if bad_step and not self.bad_step:
            self.bad_step, self.bad_loss = int(bad_step), bad_loss
        self._acc[:2].zero_()
        return values[:k]

    def state(self) -> dict:
        return {"loss": self.loss, "correct": self.correct, "seen": self.seen}


class SyncSchedule:
    """When the loop reads its device values back (a host sync): about every TARGET_S seconds, which is as
    often as progress is shown (JobContext.MAX_PROGRESS_PER_S), every step when steps are slower than that,
    and always at the epoch's end. Under torchrun the ranks also agree there on stopping and on a NaN, and on
    the next interval (the max of their proposals) in the same all-reduce, so they all sync, and stop, at the
    same step."""

    TARGET_S = 0.1
    MAX_INTERVAL = 64

    def __init__(self) -> None:
        self.interval = 1
        self.restart()

    def restart(self) -> None:
        self.since, self.started = 0, time.perf_counter()

    def due(self, step: int, steps: int) -> bool:
        self.since += 1
        return self.since >= self.interval or step >= steps

    def proposal(self) -> int:
        per_step = (time.perf_counter() - self.started) / max(self.since, 1)
        return max(1, min(self.MAX_INTERVAL, int(self.TARGET_S / max(per_step, 1e-6))))


class Mixer:
    """--mix: mixup (blend two images and their labels) or cutmix (paste a box of one into the other, labels in
    proportion to the areas), or both (one or the other per batch), on the batch's device. The partner of each
    image is another of the batch (a permutation), the mixing weight a Beta(alpha, alpha) draw, as timm's Mixup
    does. Draws come from the CPU generator, whose state checkpoints keep (a resume draws the same)."""

    ALPHA = {"mixup": 0.2, "cutmix": 1.0}

    def __init__(self, kind: str, n_classes: int):
        self.kind, self.n_classes = kind, n_classes

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed images, soft targets [B, C] in x's dtype) for images x [B, 3, H, W] and labels y [B]."""
        kind = self.kind
        if kind == "both":
            kind = "mixup" if torch.rand(1, device="cpu").item() < 0.5 else "cutmix"
        alpha = self.ALPHA[kind]
        lam = float(torch.distributions.Beta(torch.tensor(alpha, device="cpu"), torch.tensor(alpha, device="cpu"))
                    .sample())
        perm = torch.randperm(len(y), device="cpu").to(y.device)
        if kind == "mixup":
            x = x * lam + x[perm] * (1 - lam)
        else:
            h, w = x.shape[-2:]
            cut = (1 - lam) ** 0.5
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(torch.randint(0, h, (1,), device="cpu")), int(torch.randint(0, w, (1,), device="cpu"))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x = x.clone()
            x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
        one_hot = F.one_hot(y, self.n_classes).to(x.dtype)
        return x, one_hot * lam + one_hot[perm] * (1 - lam)


@dataclass
class Step:
    """What one optimisation step needs (torchvision's train_one_epoch arguments). A phase builds a new one:
    its optimizer, scheduler and DDP wrapper (engine.train.finetune.FineTuning.enter_phase)."""

    model: nn.Module  # the model itself: validation runs it
    ddp: nn.Module  # what training runs: DistributedDataParallel around `model` under torchrun, else `model`
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None  # None: the caller sets the rates (lr-find)
    scaler: torch.amp.GradScaler  # enabled for fp16 alone (engine.runtime.precision.needs_grad_scaler)
    criterion: nn.Module
    device: torch.device
    dtype: torch.dtype | None  # autocast's (engine.runtime.precision.autocast_dtype); None: fp32
    channels_last: bool
    grad_clip: float = 0.0
    mix: Mixer | None = None  # --mix: the loss is on mixed images and soft targets
    ema: AveragedModel | None = None  # --ema: updated after every optimizer step


@dataclass
class Loop:
    """What every epoch of a run shares: the job (stop, pause, progress), the processes, the sync schedule, and
    what the message after a divergence names (the run's --lr and directory)."""

    ctx: JobContext
    info: D.DistInfo
    run_dir: Path
    lr: float
    sync: SyncSchedule = field(default_factory=SyncSchedule)


def to_input(x: torch.Tensor, step: Step) -> torch.Tensor:
    """uint8 images -> floats in [0, 1] on the step's device (the model normalises), channels_last if chosen."""
    x = x.to(step.device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if step.channels_last else x


def train_step(step: Step, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0):
    """One optimisation step on a batch of uint8 images and their labels: forward under the run's autocast,
    backward (loss-scaled for fp16), clipping, the optimizer's step. Reads nothing back from the device;
    returns the loss, the logits and the labels there. The scheduler is the caller's (lr-find sets the rates
    itself). `weight` 0 takes part in DDP's gradient all-reduce without learning."""
    if step.device.type == "cuda":
        # CUDA may stage a copy from pageable host memory by waiting for the stream (a host sync): what the
        # DataLoader did not pin (a loader without pin_memory) is pinned first
        x = x if x.is_pinned() else x.pin_memory()
        y = y if y.is_pinned() else y.pin_memory()
    x, y = to_input(x, step), y.to(step.device, non_blocking=True)
    target = y
    if step.mix is not None:
        x, target = step.mix(x, y)
    with autocast(step.device, step.dtype):
        logits = step.ddp(x)
        loss = step.criterion(logits, target)
    step.optimizer.zero_grad(set_to_none=True)
    step.scaler.scale(loss if weight == 1.0 else loss * weight).backward()
    if step.grad_clip:
        step.scaler.unscale_(step.optimizer)
        nn.utils.clip_grad_norm_([q for g in step.optimizer.param_groups for q in g["params"]], step.grad_clip)
    step.scaler.step(step.optimizer)
    step.scaler.update()
    return loss.detach(), logits.detach(), y


def sync_point(meter: StepMeter, step: Step, state: TrainState, loop: Loop, epoch: int, done: int, steps: int,
               seconds: float) -> None:
    """Read the device values back; under torchrun agree with the other ranks on stopping, on a NaN and on the
    next sync interval. Raises JobStopped or TrainingDiverged on every rank at the same step."""
    ctx, info, sync = loop.ctx, loop.info, loop.sync
    stop = False
    if info.enabled:
        flags = D.all_max_(info, meter.flags(ctx.stopped, sync.proposal()))
        stop_flag, bad_flag, interval = meter.read(flags)
        stop, bad, sync.interval = stop_flag > 0, bad_flag > 0, int(interval)
    else:
        meter.read()
        bad = meter.bad_step > 0
        sync.interval = sync.proposal()
    sync.restart()
    if bad:
        # Noticed at this sync, up to one interval (about 0.1 s of steps, at most 64) after it happened: those
        # steps ran on NaN weights in memory and are lost, and none of it is saved: last.pt and best.pt stay as
        # the last good epoch end (or stop) wrote them.
        where = (f"became {meter.bad_loss} at epoch {epoch}, step {meter.bad_step}/{steps}" if meter.bad_step
                 else f"became non-finite on another process by epoch {epoch}, step {done}/{steps}")
        raise TrainingDiverged(
            f"The training loss {where} (lr {step.optimizer.param_groups[-1]['lr']:.2e}). Lower the learning "
            f"rate (e.g. --lr {loop.lr / 10:.0e}) or set --grad-clip 1.0. The last good checkpoint "
            f"(epoch {state.epoch}) is kept in {loop.run_dir}.")
    if info.is_main and (ctx.progress_due() or done >= steps):
        ctx.progress(BatchEnded(epoch, done, steps, meter.last_loss, meter.seen / max(seconds, 1e-9)), force=True)
    if stop:
        raise JobStopped()


def train_one_epoch(step: Step, loader: DataLoader, state: TrainState, loop: Loop, epoch: int, steps: int) -> dict:
    """Train epoch `epoch` over `loader`, which starts at step `state.step` of its `steps` (a resumed epoch
    continues with the sums `state.partial`). Returns train_loss, train_acc and images_per_s, every rank's
    together; `state.step` and `state.partial` then say the epoch's training is done, and with which sums (a
    stop during validation saves that). On a stop (JobStopped) they say where it stopped."""
    ctx, info, sync = loop.ctx, loop.info, loop.sync
    scheduler = step.scheduler
    assert scheduler is not None, "training steps its phase's schedule (lr-find alone runs without one)"
    done = state.step
    meter = StepMeter(step.device, state.partial["loss"], state.partial["correct"], state.partial["seen"])
    t0, paused0 = time.perf_counter() - state.partial["seconds"], ctx.paused_seconds

    def seconds() -> float:  # the epoch's training time so far, pauses left out
        return time.perf_counter() - t0 - (ctx.paused_seconds - paused0)

    batches = iter(loader)
    sync.restart()
    try:
        while True:
            if not info.enabled:
                ctx.check()  # pause / stop; under torchrun the ranks agree on a stop at sync points
            try:
                batch = next(batches)
            except StopIteration:
                break
            state.skipped.update(batch.failed)  # each broken file listed once, however often it is drawn
            if batch.usable:
                loss, logits, y = train_step(step, batch.images, batch.labels)
                meter.add(loss, logits, y, done + 1)
                if step.ema is not None:
                    step.ema.update_parameters(step.model)
            elif info.enabled:
                # Nothing to learn from, but the other ranks wait for this one in DDP's gradient all-reduce: a
                # zero-weight step on the blank images takes part (their BatchNorm statistics unused).
                with batchnorm_statistics_kept(step.model):
                    train_step(step, batch.images, batch.labels, weight=0.0)
            done += 1
            scheduler.step()
            if sync.due(done, steps):
                sync_point(meter, step, state, loop, epoch, done, steps, seconds())
    except JobStopped:
        if not info.enabled:
            sync_point(meter, step, state, loop, epoch, done, steps, seconds())  # a NaN not yet seen: unsaved
        state.step, state.partial = done, {**meter.state(), "seconds": seconds()}
        raise
    if sync.since:  # the epoch's last sync point (an epoch may end short of `steps` after a resume)
        sync_point(meter, step, state, loop, epoch, done, steps, seconds())
    secs = seconds()
    state.step, state.partial = steps, {**meter.state(), "seconds": secs}
    total_loss, total_correct, total_seen = D.all_sum(info, [meter.loss, int(meter.correct), meter.seen],
                                                      step.device)
    return {"train_loss": total_loss / max(total_seen, 1), "train_acc": total_correct / max(total_seen, 1),
            "images_per_s": total_seen / max(secs, 1e-9)}


def evaluate(step: Step, loader: DataLoader, n_classes: int, state: TrainState, loop: Loop):
    """(val loss, val acc) reduced across ranks, and this rank's logits and which of its samples they count
    (on the host; a file that broke is left out and listed in `state.skipped`)."""
    model, info = step.model, loop.info
    model.eval()
    n = len(cast(Sized, loader.dataset))  # the validation files: a Dataset with a length
    # the logits stay on the device until the pass ends: one copy to the host, not one sync per batch
    logits_all = torch.zeros(n, n_classes, device=step.device)
    labels = torch.zeros(n, dtype=torch.long, device="cpu")
    keep = torch.zeros(n, dtype=torch.bool, device="cpu")
    with torch.inference_mode():
        for batch in loader:
            if not info.enabled:
                loop.ctx.check()
            state.skipped.update(batch.failed)
            if not batch.usable:
                continue
            with autocast(step.device, step.dtype):
                logits = model(to_input(batch.images, step))
            logits_all[batch.index.to(step.device, non_blocking=True)] = logits.float()
            labels[batch.index] = batch.labels
            keep[batch.index] = True
    logits_all = logits_all.cpu()
    logits_k, labels_k = logits_all[keep], labels[keep]
    loss = nn.functional.cross_entropy(logits_k, labels_k, reduction="sum").item() if len(labels_k) else 0.0
    correct = int((logits_k.argmax(1) == labels_k).sum()) if len(labels_k) else 0
    total_loss, total_correct, total = D.all_sum(info, [loss, correct, len(labels_k)], step.device)
    if total == 0:
        return float("nan"), float("nan"), logits_all, keep
    return total_loss / total, total_correct / total, logits_all, keep
