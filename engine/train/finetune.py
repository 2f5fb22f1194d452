"""Fine-tuning on images: the head, partial and full modes, with checkpoints that resume exactly.

- head: the backbone frozen, in eval mode (its BatchNorm statistics never move), a new head trained on
  augmented images.
- partial: the backbone's last N stages (engine.models.stages) trained with the head; the frozen ones stay in eval.
- full: fastai's `fine_tune`: `freeze_epochs` epochs with the backbone frozen (one-cycle, pct_start 0.99),
  then everything unfrozen with discriminative learning rates (fastai's slice(lr/100, lr): the head at lr,
  the last stage at lr/10, down to lr/100 for the first) under a second one-cycle schedule at half the rate.

The loop is the plain one (torchvision's references): DataLoader workers decode uint8 images, the model
normalises on the device, autocast (engine.runtime.precision: bf16 or fp16 on CUDA by default, any precision when
asked) and channels_last (on CUDA and CPU by default). Each sample's augmentation has its own seed (seed,
epoch, sample), so it is the same with any number of workers or ranks and after a resume. Losses and
accuracy stay on the device and are read back only at sync points (StepMeter, SyncSchedule), not every
step. Every epoch ends with last.pt (and best.pt when the validation accuracy improves, ties broken by the
lower loss), holding model, optimizer, scheduler, scaler, RNG states (every rank's under torchrun) and where
the epoch stood; a stop (the workbench, Ctrl+C, SIGTERM, SIGHUP) saves last.pt at the step it reached.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.core.errors import ConfigError, JobError
from engine.core.events import BatchEnded, CheckpointSaved, EpochEnded
from engine.core.jobs import JobStopped
from engine.core.runs import append_metrics, save_checkpoint
from engine.data.loaders import ImageFiles, auto_workers, data_loader
from engine.models.stages import backbone_stages, describe
from engine.runtime import distributed as D
from engine.runtime.precision import (
    autocast,
    autocast_dtype,
    needs_grad_scaler,
    training_precision,
    use_channels_last,
)
from engine.runtime.seeding import derived_seed
from engine.train.prepare import Prepared
from engine.train.probe import improves

if TYPE_CHECKING:
    from engine.core.jobs import JobContext
from engine.train.augment import (
    RANK_STREAM,
    epoch_indices,
    rng_state,
    set_rng_state,
    train_loader,
    train_transform,
)
from engine.train.recipe import (
    batchnorm_statistics_kept,
    make_optimizer,
    make_scheduler,
    param_groups,
    phase_index,
    plan_phases,
    set_bn_momentum,
    set_train_mode,
    set_trainable,
    stage_lr,
)


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


def tensorboard_writer(p: Prepared):
    if not p.config.tensorboard or not p.dist.is_main:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "--tensorboard needs the tensorboard package, which is not installed. Install it with "
            "pip install 'tlbench[tensorboard]' (or pip install tensorboard), or drop --tensorboard.") from None
    return SummaryWriter(log_dir=str(p.run_dir / "tensorboard"))


def check_tensorboard(cfg) -> None:
    """Fail before any work when --tensorboard cannot work."""
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--tensorboard needs the tensorboard package, which is not installed. Install it with "
                "pip install 'tlbench[tensorboard]' (or pip install tensorboard), or drop --tensorboard.") from None


class Trainer:
    """State of one fine-tuning run; `run()` is the loop, `train_step()` one optimisation step."""

    def __init__(self, p: Prepared, ctx: JobContext, resume: dict | None = None):
        self.p, self.ctx, self.cfg = p, ctx, p.config
        self.info = p.dist
        self.device = p.device
        self.model = p.model.to(self.device)
        # engine.runtime.precision's choice: bf16 (or fp16 on older GPUs) on CUDA by default, fp32 elsewhere unless
        # asked; fp16 alone needs loss scaling
        self.dtype = autocast_dtype(self.device, training_precision(self.cfg.precision, self.cfg.amp))
        self.channels_last = use_channels_last(self.device, self.cfg.channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=needs_grad_scaler(self.device, self.dtype))
        self.stages = backbone_stages(self.model.backbone)
        self.phases = plan_phases(self.cfg, len(self.stages))
        self.workers = auto_workers(self.device) if self.cfg.workers is None else self.cfg.workers
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.cfg.label_smoothing)
        self.train_ds = ImageFiles([s.path for s in p.train], p.prep, train_transform(self.cfg.augment, p.prep))
        # labels stay on the host: the loader's indices pick them there, then they travel with the batch
        self.train_labels = torch.tensor([s.label for s in p.train], dtype=torch.long, device="cpu")
        mine = p.val[self.info.rank::self.info.world_size]  # each rank validates its share, no padding
        self.val_index = list(range(len(p.val)))[self.info.rank::self.info.world_size]
        self.val_ds = ImageFiles([s.path for s in mine], p.prep)
        self.val_labels = torch.tensor([s.label for s in mine], dtype=torch.long, device="cpu")
        self.history: list[dict] = []
        self.best = {"val_acc": -1.0, "val_loss": math.inf, "epoch": 0}
        self.best_logits: tuple[list[int], torch.Tensor] | None = None
        self.bad_epochs = 0
        self.epoch = 0  # completed epochs
        self.skip_steps = 0
        self.partial = {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
        self.phase_id = -1
        self.ddp: nn.Module = self.model
        self.planned_lrs: list[float] = []
        self.sync = SyncSchedule()
        self.skipped: dict[str, str] = {}
        self.log(f"stages of {self.cfg.backbone}: {describe(self.stages)}")
        self.resume_state = resume
        if resume is not None:
            self._restore(resume)
        else:  # a new head starts small, as the probe's does: pretrained features are large
            nn.init.normal_(self.model.head.weight, std=0.01)
            nn.init.zeros_(self.model.head.bias)
            if self.info.enabled:
                torch.manual_seed(derived_seed(self.cfg.seed, RANK_STREAM, self.info.rank))

    # -- helpers

    def log(self, text: str, level: str = "info") -> None:
        if self.info.is_main:
            self.ctx.log(text, level)

    def steps_per_epoch(self, epoch: int) -> int:
        n = len(epoch_indices(len(self.p.train), self.cfg.batch_size, self.cfg.seed, epoch, self.info))
        return max(1, math.ceil(n / self.cfg.batch_size))

    def enter_phase(self, idx: int, optimizer_state: dict | None = None, schedule: bool = True) -> None:
        """Train the phase's parameters with a new optimizer and, unless `schedule` is False (lr-find sets
        the rates itself), its one-cycle scheduler — which also rewrites the groups' rates and momentum."""
        ph = self.phases[idx]
        self.phase_id = idx
        # DDP registers the parameters that require grad when it wraps: the old wrapper goes before they change
        D.unwrap(self.ddp)
        self.ddp = self.model
        self.trainable = set_trainable(self.model, self.stages, ph.trainable)
        if self.cfg.train_bn:
            set_bn_momentum(self.trainable)
        when = f"epochs {ph.first}-{ph.last}" if ph.last > ph.first else f"epoch {ph.first}"
        if ph.trainable:
            names = ", ".join(s.name for s in self.trainable)
            what = "all stages" if ph.trainable == len(self.stages) else f"the last {ph.trainable} stage(s)"
            first = len(self.stages) - len(self.trainable)
            self.log(f"{when}: training {what} ({names}) and the head; lr {ph.lr:.2e} for the head, "
                     f"{stage_lr(ph.lr, len(self.stages) - 1, len(self.stages)):.2e} for {self.trainable[-1].name} "
                     f"down to {stage_lr(ph.lr, first, len(self.stages)):.2e} for {self.trainable[0].name}")
        else:
            self.log(f"{when}: backbone frozen (BatchNorm in eval mode), training the head, "
                     f"lr {ph.lr:.2e}")
        groups = param_groups(self.model, self.stages, self.trainable, ph.lr, self.cfg.weight_decay)
        # each group's planned peak rate, before a scheduler rewrites param_groups' "lr" (lr-find scales these)
        self.planned_lrs = [g["lr"] for g in groups]
        self.optimizer = make_optimizer(self.cfg, groups)
        total = sum(self.steps_per_epoch(e) for e in range(ph.first, ph.last + 1))
        self.scheduler = make_scheduler(self.optimizer, ph, total) if schedule else None
        self.ddp = D.wrap(self.model, self.info, self.device)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state["optimizer"])
            self.scheduler.load_state_dict(optimizer_state["scheduler"])
            if optimizer_state.get("scaler"):
                self.scaler.load_state_dict(optimizer_state["scaler"])

    def set_lr(self, lr: float) -> None:
        """Every parameter group at `lr` times its planned share of the phase's rate (the head's share is 1,
        a stage's less in partial and full): what lr-find applies at each step."""
        base = self.phases[self.phase_id].lr
        for group, planned in zip(self.optimizer.param_groups, self.planned_lrs, strict=True):
            group["lr"] = lr * planned / base

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.epoch = int(ckpt["epoch"])
        self.skip_steps = int(ckpt.get("step", 0))
        self.partial = dict(ckpt.get("partial") or self.partial)
        partials = ckpt.get("partial_ranks") or []
        if self.info.enabled and len(partials) == self.info.world_size:
            self.partial = dict(partials[self.info.rank])
        self.history = list(ckpt.get("history", []))
        self.best = dict(ckpt.get("best", self.best))
        self.bad_epochs = int(ckpt.get("bad_epochs", 0))
        self.skipped = dict(ckpt.get("skipped", {}))
        next_epoch = self.epoch + 1
        saved_phase = int(ckpt.get("phase", -1))
        if next_epoch <= self.cfg.epochs:
            want = phase_index(self.phases, next_epoch)
            self.enter_phase(want, ckpt if want == saved_phase else None)
        ranks = ckpt.get("rng_ranks") or []
        if self.info.enabled and len(ranks) == self.info.world_size:
            set_rng_state(ranks[self.info.rank])
        else:
            set_rng_state(ckpt["rng"])
            if self.info.enabled:  # another number of processes than the run had: each rank a stream of its own
                torch.manual_seed(derived_seed(self.cfg.seed, RANK_STREAM, self.info.rank, self.epoch,
                                               self.skip_steps))
        where = f"epoch {self.epoch + 1}, step {self.skip_steps}" if self.skip_steps else f"epoch {self.epoch + 1}"
        self.log(f"resumed from last.pt: {self.epoch} epoch(s) done; continuing at {where}")

    def payload(self, step: int = 0) -> dict:
        """last.pt / best.pt. Under torchrun every rank calls this at the same point: each rank's RNG state
        (it draws its own dropout) and its part of a stopped epoch's sums are gathered; rank 0 writes."""
        rng = rng_state()
        ranks = D.gather(self.info, {"rng": rng, "partial": dict(self.partial)}) if self.info.enabled else None
        return {
            "config": self.p.record, "epoch": self.epoch, "step": step, "partial": dict(self.partial),
            "partial_ranks": [r["partial"] for r in ranks] if ranks else None,
            "model_scope": "full", "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None, "phase": self.phase_id,
            "rng": rng, "rng_ranks": [r["rng"] for r in ranks] if ranks else None,
            "classes": self.p.info.classes,
            "metrics": self.history[-1] if self.history else {}, "history": list(self.history),
            "best": dict(self.best), "bad_epochs": self.bad_epochs, "skipped": dict(self.skipped),
        }

    def save(self, name: str, payload: dict) -> None:
        if self.info.is_main:
            save_checkpoint(self.p.run_dir / name, payload)

    # -- one step

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float().div_(255)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_step(self, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0):
        """One optimisation step on a batch of uint8 images and their labels: forward under the run's
        autocast, backward (loss-scaled for fp16), clipping, the optimizer's step. Reads nothing back from
        the device; returns the loss, the logits and the labels there. The scheduler is the caller's (lr-find
        sets the rates itself). `weight` 0 takes part in DDP's gradient all-reduce without learning."""
        if self.device.type == "cuda":
            # CUDA may stage a copy from pageable host memory by waiting for the stream (a host sync): the
            # labels (indexed on the host) and a filtered batch are pinned first, as the DataLoader pins images
            x = x if x.is_pinned() else x.pin_memory()
            y = y if y.is_pinned() else y.pin_memory()
        x, y = self.to_input(x), y.to(self.device, non_blocking=True)
        with autocast(self.device, self.dtype):
            logits = self.ddp(x)
            loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss if weight == 1.0 else loss * weight).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([q for g in self.optimizer.param_groups for q in g["params"]],
                                     self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach(), y

    # -- one epoch

    def sync_point(self, meter: StepMeter, epoch: int, step: int, steps: int, seconds: float) -> None:
        """Read the device values back; under torchrun agree with the other ranks on stopping, on a NaN and
        on the next sync interval. Raises JobStopped or TrainingDiverged on every rank at the same step."""
        stop = False
        if self.info.enabled:
            flags = D.all_max_(self.info, meter.flags(self.ctx.stopped, self.sync.proposal()))
            stop_flag, bad_flag, interval = meter.read(flags)
            stop, bad, self.sync.interval = stop_flag > 0, bad_flag > 0, int(interval)
        else:
            meter.read()
            bad = meter.bad_step > 0
            self.sync.interval = self.sync.proposal()
        self.sync.restart()
        if bad:
            # Noticed at this sync, up to one interval (about 0.1 s of steps, at most 64) after it happened:
            # those steps ran on NaN weights in memory and are lost, and none of it is saved: last.pt and
            # best.pt stay as the last good epoch end (or stop) wrote them.
            where = (f"became {meter.bad_loss} at epoch {epoch}, step {meter.bad_step}/{steps}" if meter.bad_step
                     else f"became non-finite on another process by epoch {epoch}, step {step}/{steps}")
            raise TrainingDiverged(
                f"The training loss {where} (lr {self.optimizer.param_groups[-1]['lr']:.2e}). Lower the learning "
                f"rate (e.g. --lr {self.cfg.lr / 10:.0e}) or set --grad-clip 1.0. The last good checkpoint "
                f"(epoch {self.epoch}) is kept in {self.p.run_dir}.")
        if self.info.is_main and (self.ctx.progress_due() or step >= steps):
            self.ctx.progress(BatchEnded(epoch, step, steps, meter.last_loss, meter.seen / max(seconds, 1e-9)),
                              force=True)
        if stop:
            raise JobStopped()

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        set_train_mode(self.model, self.stages, self.trainable, self.cfg.train_bn)
        order = epoch_indices(len(self.p.train), cfg.batch_size, cfg.seed, epoch, self.info)
        steps = max(1, math.ceil(len(order) / cfg.batch_size))
        start_step = self.skip_steps
        self.skip_steps = 0
        dl = train_loader(self.train_ds, order[start_step * cfg.batch_size:], cfg.batch_size, self.workers,
                          self.device, cfg.seed, epoch)
        meter = StepMeter(self.device, self.partial["loss"], self.partial["correct"], self.partial["seen"])
        t0, paused0 = time.perf_counter() - self.partial["seconds"], self.ctx.paused_seconds

        def seconds() -> float:  # the epoch's training time so far, pauses left out
            return time.perf_counter() - t0 - (self.ctx.paused_seconds - paused0)

        step = start_step
        batches = iter(dl)
        self.sync.restart()
        try:
            while True:
                if not self.info.enabled:
                    self.ctx.check()  # pause / stop; under torchrun the ranks agree on a stop at sync points
                try:
                    x, idx, err = next(batches)
                except StopIteration:
                    break
                y = self.train_labels[idx]
                weight = 1.0
                if any(err):  # a file that broke since the scan: drop it from the batch, list it once
                    ok = torch.tensor([not e for e in err], device="cpu")
                    for i, e in zip(idx.tolist(), err):
                        if e:
                            self.skipped[self.p.train[i].path] = e
                    if ok.any():
                        x, y = x[ok], y[ok]
                    else:
                        weight = 0.0
                if weight:
                    loss, logits, y_dev = self.train_step(x, y)
                    meter.add(loss, logits, y_dev, step + 1)
                elif self.info.enabled:
                    # Nothing to learn from, but the other ranks wait for this one in DDP's gradient all-reduce:
                    # a zero-weight step on the blank images takes part (their BatchNorm statistics unused).
                    with batchnorm_statistics_kept(self.model):
                        self.train_step(x, y, weight=0.0)
                step += 1
                self.scheduler_step()
                if self.sync.due(step, steps):
                    self.sync_point(meter, epoch, step, steps, seconds())
        except JobStopped:
            if not self.info.enabled:
                self.sync_point(meter, epoch, step, steps, seconds())  # a NaN not yet seen must not be saved
            self.partial = {**meter.state(), "seconds": seconds()}
            self.save("last.pt", self.payload(step))
            self.log(f"stopped at epoch {epoch}, step {step}/{steps}: last.pt saved; "
                     f"continue with tlbench train --resume {self.p.run_dir}")
            raise
        if self.sync.since:  # the epoch's last sync point (an epoch may end short of `steps` after a resume)
            self.sync_point(meter, epoch, step, steps, seconds())
        secs = seconds()
        self.partial = {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
        total_loss, total_correct, total_seen = D.all_sum(self.info, [meter.loss, int(meter.correct), meter.seen],
                                                          self.device)
        self.epoch_sums = {**meter.state(), "seconds": secs}
        return {"train_loss": total_loss / max(total_seen, 1), "train_acc": total_correct / max(total_seen, 1),
                "images_per_s": total_seen / max(secs, 1e-9)}

    def scheduler_step(self) -> None:
        self.scheduler.step()

    def validate(self) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        """(val loss, val acc) reduced across ranks, and this rank's logits and labels (on the host)."""
        self.model.eval()
        dl = data_loader(self.val_ds, batch_size=self.cfg.batch_size, num_workers=self.workers,
                         pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers else None)
        # the logits stay on the device until the pass ends: one copy to the host, not one sync per batch
        logits_all = torch.zeros(len(self.val_ds), len(self.p.info.classes), device=self.device)
        keep = torch.ones(len(self.val_ds), dtype=torch.bool, device="cpu")
        with torch.inference_mode():
            for x, idx, err in dl:
                if not self.info.enabled:
                    self.ctx.check()
                with autocast(self.device, self.dtype):
                    logits = self.model(self.to_input(x))
                logits_all[idx.to(self.device, non_blocking=True)] = logits.float()
                for i, e in zip(idx.tolist(), err):
                    if e:
                        keep[i] = False
                        self.skipped[self.p.val[self.val_index[i]].path] = e
        logits_all = logits_all.cpu()
        logits_k, labels_k = logits_all[keep], self.val_labels[keep]
        loss = nn.functional.cross_entropy(logits_k, labels_k, reduction="sum").item() if len(labels_k) else 0.0
        correct = int((logits_k.argmax(1) == labels_k).sum()) if len(labels_k) else 0
        total_loss, total_correct, n = D.all_sum(self.info, [loss, correct, len(labels_k)], self.device)
        if n == 0:
            return float("nan"), float("nan"), logits_all, keep
        return total_loss / n, total_correct / n, logits_all, keep

    # -- the run

    def run(self) -> dict:
        cfg = self.cfg
        writer = tensorboard_writer(self.p)
        started, paused_at_start = time.perf_counter(), self.ctx.paused_seconds
        early = False
        try:
            if self.resume_state is None:
                self.enter_phase(0)
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                idx = phase_index(self.phases, epoch)
                if idx != self.phase_id:
                    self.enter_phase(idx)
                t0, paused0 = time.perf_counter(), self.ctx.paused_seconds
                row = {"epoch": epoch, **self.train_epoch(epoch)}
                try:
                    val_loss, val_acc, logits, keep = self.validate()
                except JobStopped:
                    # the epoch's training is complete: a resume goes straight to its validation
                    self.partial = dict(self.epoch_sums)
                    self.save("last.pt", self.payload(self.steps_per_epoch(epoch)))
                    self.log(f"stopped during validation of epoch {epoch}: last.pt saved")
                    raise
                paused = self.ctx.paused_seconds - paused0
                row.update({"val_loss": val_loss, "val_acc": val_acc, "lr": self.optimizer.param_groups[-1]["lr"],
                            "seconds": time.perf_counter() - t0 - paused, "paused_seconds": round(paused, 3)})
                self.epoch = epoch
                self.history.append(row)
                improved = improves(val_acc, val_loss, self.best)
                if improved:
                    self.best = {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch}
                    self.bad_epochs = 0
                    gathered = D.gather(self.info, ([self.val_index[i] for i in range(len(keep)) if keep[i]],
                                                    logits[keep]))
                    order = [i for part in gathered for i in part[0]]
                    self.best_logits = (order, torch.cat([part[1] for part in gathered]))
                else:
                    self.bad_epochs += 1
                payload = self.payload(0)
                if self.info.is_main:
                    append_metrics(self.p.run_dir, row)
                    self.save("last.pt", payload)
                    if improved:
                        self.save("best.pt", payload)
                        self.ctx.emit(CheckpointSaved(str(self.p.run_dir / "best.pt"), epoch, best=True))
                    self.ctx.emit(CheckpointSaved(str(self.p.run_dir / "last.pt"), epoch))
                    metrics = {k: row[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr",
                                                   "images_per_s")}
                    self.ctx.emit(EpochEnded(epoch, cfg.epochs, metrics, row["seconds"]))
                    if writer is not None:
                        for k, v in metrics.items():
                            writer.add_scalar(k, v, epoch)
                        writer.flush()
                self.ctx.result.update({"epochs": epoch, "val_acc": val_acc, "best_val_acc": self.best["val_acc"],
                                        "best_epoch": self.best["epoch"]})
                if cfg.patience and self.bad_epochs >= cfg.patience and epoch < cfg.epochs:
                    self.log(f"early stopping: no better validation accuracy for {cfg.patience} epoch(s); "
                             f"best {self.best['val_acc']:.4f} at epoch {self.best['epoch']}")
                    early = True
                    break
        finally:
            if writer is not None:
                writer.close()
        paused = self.ctx.paused_seconds - paused_at_start
        return self.summary(time.perf_counter() - started - paused, early, paused)

    def summary(self, seconds: float, early: bool, paused: float = 0.0) -> dict:
        last = self.history[-1] if self.history else {}
        rates = [h["images_per_s"] for h in self.history if h.get("images_per_s")]
        # every rank lists the files that broke in its own shard (called on every rank at the run's end)
        self.skipped = {path: why for part in D.gather(self.info, self.skipped) for path, why in part.items()}
        for path, reason in sorted(self.skipped.items()):
            self.log(f"skipped {path}: {reason}", "warning")
        return {
            "val_acc": last.get("val_acc"), "best_val_acc": self.best["val_acc"], "best_epoch": self.best["epoch"],
            "epochs": self.epoch, "early_stopped": early,
            "train_images": len(self.p.train), "val_images": len(self.p.val),
            "skipped_images": len(self.p.info.unreadable) + len(self.skipped),
            "images_per_s": round(sum(rates) / len(rates), 2) if rates else None,
            "train_seconds": round(seconds, 3), "paused_seconds": round(paused, 3),
        }


def write_final_report(trainer: Trainer, ctx: JobContext) -> dict | None:
    """report.json for best.pt: from the best epoch's validation logits when this process has them, else an
    evaluation pass over the validation split."""
    from engine.evaluate.evaluation import build_report, evaluate_run, save_report

    p = trainer.p
    if not trainer.info.is_main or not (p.run_dir / "best.pt").exists():
        return None
    if trainer.best_logits is not None:
        order, logits = trainer.best_logits
        labels = torch.tensor([p.val[i].label for i in order], dtype=torch.long, device="cpu")
        report = build_report(logits, labels, [p.val[i].path for i in order], p.info.classes)
        save_report(p.run_dir, report, p.prep)
        return report
    evaluate_run(p.run_dir, ctx=None, device=str(p.device.type), batch_size=p.config.batch_size,
                 workers=p.config.workers)
    from engine.core.files import read_json

    return read_json(p.run_dir / "report.json")


def train_finetune(p: Prepared, ctx: JobContext, resume: dict | None = None) -> dict:
    """The head, partial and full modes (see the module docstring); returns the run summary."""
    check_tensorboard(p.config)
    trainer = Trainer(p, ctx, resume)
    try:
        result = trainer.run()
    except JobStopped:
        if trainer.best_logits is not None:  # a stopped run still gets its report when it costs nothing
            write_final_report(trainer, ctx)
        raise
    report = write_final_report(trainer, ctx)
    if report is not None:
        result["report"] = str(p.run_dir / "report.json")
        result["top5"] = report.get("top5")
    return result

