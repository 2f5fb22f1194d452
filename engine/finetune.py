"""Fine-tuning on images: the head, partial and full modes, with checkpoints that resume exactly.

- head: the backbone frozen, in eval mode (its BatchNorm statistics never move), a new head trained on
  augmented images.
- partial: the backbone's last N stages (engine.stages) trained with the head; the frozen ones stay in eval.
- full: fastai's `fine_tune`: `freeze_epochs` epochs with the backbone frozen (one-cycle, pct_start 0.99),
  then everything unfrozen with discriminative learning rates (fastai's slice(lr/100, lr): the head at lr,
  the last stage at lr/10, down to lr/100 for the first) under a second one-cycle schedule at half the rate.

The loop is the plain one (torchvision's references): DataLoader workers decode uint8 images, the model
normalises on the device, AMP and channels_last on CUDA. Every epoch ends with last.pt (and best.pt when the
validation accuracy improves), holding model, optimizer, scheduler, scaler, RNG states and where the epoch
stood; a stop (the workbench, Ctrl+C, SIGTERM, SIGHUP) saves last.pt at the step it reached.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from engine import distributed as D
from engine.errors import ConfigError, JobError
from engine.events import BatchEnded, CheckpointSaved, EpochEnded
from engine.jobs import JobStopped
from engine.preprocess import ImageFiles, auto_workers, data_loader
from engine.runs import append_metrics, save_checkpoint
from engine.stages import Stage, backbone_stages, describe

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.training import Prepared



class TrainingDiverged(JobError):
    title = "Training diverged"


# ------------------------------------------------------------------------------------------------ data


def train_transform(preset: str, prep: dict):
    """PIL image -> uint8 tensor with the preset's augmentation (None: the eval transform)."""
    if preset == "none":
        return None
    from torchvision.transforms import InterpolationMode, v2

    size = prep["crop_size"]
    interp = InterpolationMode(prep.get("interpolation", "bilinear"))
    if preset == "light":
        return v2.Compose([v2.RandomResizedCrop(size, scale=(0.35, 1.0), interpolation=interp, antialias=True),
                           v2.RandomHorizontalFlip(), v2.PILToTensor()])
    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=interp, antialias=True),
                       v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(interpolation=interp), v2.PILToTensor(),
                       v2.RandomErasing(p=0.25)])


def epoch_indices(n: int, batch_size: int, seed: int, epoch: int, info: D.DistInfo) -> list[int]:
    """This rank's sample order for an epoch: DistributedSampler's (seeded by seed and epoch, the same with
    one process or many), without a last batch of one image (BatchNorm cannot train on it)."""
    sampler = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    order = list(sampler)
    if len(order) % batch_size == 1 and len(order) > 1:
        order = order[:-1]
    return order


def loader(ds, indices: list[int], batch_size: int, workers: int, device: torch.device, seed: int) -> DataLoader:
    # An explicit generator seeds the workers' augmentation, so an epoch is the same after a resume.
    return data_loader(ds, batch_size=batch_size, sampler=indices, num_workers=workers,
                       pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed),
                       prefetch_factor=4 if workers else None)


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class Phase:
    first: int  # first epoch (1-based)
    last: int
    trainable: int  # how many of the backbone's last stages train (0: the head only)
    lr: float  # the head's peak learning rate
    pct_start: float = 0.3
    div_factor: float = 25.0


def plan_phases(cfg, n_stages: int) -> list[Phase]:
    if cfg.mode == "head":
        return [Phase(1, cfg.epochs, 0, cfg.lr)]
    if cfg.mode == "partial":
        return [Phase(1, cfg.epochs, min(cfg.unfreeze, n_stages), cfg.lr)]
    frozen = cfg.freeze_epochs
    phases = [Phase(1, frozen, 0, cfg.lr, pct_start=0.99)] if frozen else []
    phases.append(Phase(frozen + 1, cfg.epochs, n_stages, cfg.lr / 2 if frozen else cfg.lr, div_factor=5.0))
    return phases


def phase_index(phases: list[Phase], epoch: int) -> int:
    for i, ph in enumerate(phases):
        if ph.first <= epoch <= ph.last:
            return i
    return len(phases) - 1


def set_trainable(model: nn.Module, stages: list[Stage], n: int) -> list[Stage]:
    """Freeze the backbone but its last `n` stages; returns the trainable stages."""
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    trainable = stages[len(stages) - n:] if n else []
    for stage in trainable:
        for p in stage.parameters():
            p.requires_grad_(True)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return trainable


# With --train-bn, trained BatchNorm layers update their running statistics. EfficientNet-Lite's momentum is
# TensorFlow's 0.99 (0.01 here): over a short fine-tune those statistics would lag far behind the changing
# weights, so trained layers use at least PyTorch's default.
MIN_BN_MOMENTUM = 0.1


def set_bn_momentum(stages: list[Stage]) -> None:
    for stage in stages:
        for module in stage.modules:
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
                    m.momentum = max(m.momentum, MIN_BN_MOMENTUM)


def set_train_mode(model: nn.Module, stages: list[Stage], trainable: list[Stage], train_bn: bool = False) -> None:
    """Train mode, except what is frozen: a frozen stage is in eval mode (its BatchNorm statistics never
    move). Trained stages keep their BatchNorm statistics too unless `train_bn` (Keras's advice for
    fine-tuning: small batches of a small dataset would replace ImageNet's statistics with noise, and the
    head would see the features shift under it); their BatchNorm scale and shift still learn."""
    model.train()
    if not trainable:
        model.backbone.eval()  # a fixed feature extractor, dropout included
        return
    keep = {id(s) for s in trainable}
    for stage in stages:
        if id(stage) not in keep:
            for m in stage.modules:
                m.eval()
        elif not train_bn:
            for m in stage.modules:
                for bn in m.modules():
                    if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                        bn.eval()


def stage_lr(lr: float, i: int, k: int) -> float:
    """fastai's slice(lr/100, lr) spread over the backbone's own stages: the head learns at lr, the last
    stage at lr/10, down to lr/100 for the first (geometric steps between)."""
    if k <= 1:
        return lr / 10
    return lr / 10 * (1 / 10) ** ((k - 1 - i) / (k - 1))


def param_groups(model: nn.Module, stages: list[Stage], trainable: list[Stage], lr: float,
                 weight_decay: float) -> list[dict]:
    """One group per stage (discriminative rates), the head last; no weight decay on biases and norms."""
    k = len(stages)
    groups = []

    def add(params, group_lr, name):
        params = [p for p in params if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        rest = [p for p in params if p.ndim <= 1]
        if decay:
            groups.append({"params": decay, "lr": group_lr, "weight_decay": weight_decay, "name": name})
        if rest:
            groups.append({"params": rest, "lr": group_lr, "weight_decay": 0.0, "name": name + " (no decay)"})

    keep = {id(s) for s in trainable}
    for i, stage in enumerate(stages):
        if id(stage) in keep:
            add(stage.parameters(), stage_lr(lr, i, k), stage.name)
    add(model.head.parameters(), lr, "head")
    return groups


def make_optimizer(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(optimizer, phase: Phase, total_steps: int):
    if total_steps < 4:  # too short for a cycle: a constant rate
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
        pct_start=phase.pct_start, div_factor=phase.div_factor)


# ------------------------------------------------------------------------------------------------ RNG


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as plain lists and tensors (weights_only can load them)."""
    version, state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": {"version": version, "state": torch.tensor(state, dtype=torch.int64),
                   "gauss": gauss if gauss is not None else None},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
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


# ------------------------------------------------------------------------------------------------ the loop


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
    """State of one fine-tuning run; `run()` is the loop."""

    def __init__(self, p: Prepared, ctx: JobContext, resume: dict | None = None):
        self.p, self.ctx, self.cfg = p, ctx, p.config
        self.info = p.dist
        self.device = p.device
        self.model = p.model.to(self.device)
        cuda = self.device.type == "cuda"
        self.amp = cuda and self.cfg.amp
        if cuda and self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.channels_last = cuda and self.cfg.channels_last
        self.stages = backbone_stages(self.model.backbone)
        self.phases = plan_phases(self.cfg, len(self.stages))
        self.workers = auto_workers(self.device) if self.cfg.workers is None else self.cfg.workers
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.cfg.label_smoothing)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.train_ds = ImageFiles([s.path for s in p.train], p.prep, train_transform(self.cfg.augment, p.prep))
        self.train_labels = torch.tensor([s.label for s in p.train], dtype=torch.long)
        mine = p.val[self.info.rank::self.info.world_size]  # each rank validates its share, no padding
        self.val_index = list(range(len(p.val)))[self.info.rank::self.info.world_size]
        self.val_ds = ImageFiles([s.path for s in mine], p.prep)
        self.val_labels = torch.tensor([s.label for s in mine], dtype=torch.long)
        self.history: list[dict] = []
        self.best = {"val_acc": -1.0, "val_loss": math.inf, "epoch": 0}
        self.best_logits: tuple[list[int], torch.Tensor] | None = None
        self.bad_epochs = 0
        self.epoch = 0  # completed epochs
        self.skip_steps = 0
        self.partial = {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
        self.phase_id = -1
        self.skipped: dict[str, str] = {}
        self.log(f"stages of {self.cfg.backbone}: {describe(self.stages)}")
        self.resume_state = resume
        if resume is not None:
            self._restore(resume)
        else:  # a new head starts small, as the probe's does: pretrained features are large
            nn.init.normal_(self.model.head.weight, std=0.01)
            nn.init.zeros_(self.model.head.bias)

    # -- helpers

    def log(self, text: str, level: str = "info") -> None:
        if self.info.is_main:
            self.ctx.log(text, level)

    def steps_per_epoch(self, epoch: int) -> int:
        n = len(epoch_indices(len(self.p.train), self.cfg.batch_size, self.cfg.seed, epoch, self.info))
        return max(1, math.ceil(n / self.cfg.batch_size))

    def enter_phase(self, idx: int, optimizer_state: dict | None = None) -> None:
        ph = self.phases[idx]
        self.phase_id = idx
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
        self.optimizer = make_optimizer(self.cfg, groups)
        total = sum(self.steps_per_epoch(e) for e in range(ph.first, ph.last + 1))
        self.scheduler = make_scheduler(self.optimizer, ph, total)
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DDP(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state["optimizer"])
            self.scheduler.load_state_dict(optimizer_state["scheduler"])
            if optimizer_state.get("scaler"):
                self.scaler.load_state_dict(optimizer_state["scaler"])

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.epoch = int(ckpt["epoch"])
        self.skip_steps = int(ckpt.get("step", 0))
        self.partial = dict(ckpt.get("partial") or self.partial)
        self.history = list(ckpt.get("history", []))
        self.best = dict(ckpt.get("best", self.best))
        self.bad_epochs = int(ckpt.get("bad_epochs", 0))
        self.skipped = dict(ckpt.get("skipped", {}))
        next_epoch = self.epoch + 1
        saved_phase = int(ckpt.get("phase", -1))
        if next_epoch <= self.cfg.epochs:
            want = phase_index(self.phases, next_epoch)
            self.enter_phase(want, ckpt if want == saved_phase else None)
        set_rng_state(ckpt["rng"])
        where = f"epoch {self.epoch + 1}, step {self.skip_steps}" if self.skip_steps else f"epoch {self.epoch + 1}"
        self.log(f"resumed from last.pt: {self.epoch} epoch(s) done; continuing at {where}")

    def payload(self, step: int = 0) -> dict:
        return {
            "config": self.p.record, "epoch": self.epoch, "step": step, "partial": dict(self.partial),
            "model_scope": "full", "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else None, "phase": self.phase_id,
            "rng": rng_state(), "classes": self.p.info.classes,
            "metrics": self.history[-1] if self.history else {}, "history": list(self.history),
            "best": dict(self.best), "bad_epochs": self.bad_epochs, "skipped": dict(self.skipped),
        }

    def save(self, name: str, payload: dict) -> None:
        if self.info.is_main:
            save_checkpoint(self.p.run_dir / name, payload)

    # -- one epoch

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float().div_(255)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def sync_flags(self, stop: bool, bad: bool) -> tuple[bool, bool]:
        if not self.info.enabled:
            return stop, bad
        s, b = D.all_sum(self.info, [float(stop), float(bad)], self.device)
        return s > 0, b > 0

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        set_train_mode(self.model, self.stages, self.trainable, self.cfg.train_bn)
        order = epoch_indices(len(self.p.train), cfg.batch_size, cfg.seed, epoch, self.info)
        steps = max(1, math.ceil(len(order) / cfg.batch_size))
        start_step = self.skip_steps
        self.skip_steps = 0
        dl = loader(self.train_ds, order[start_step * cfg.batch_size:], cfg.batch_size, self.workers,
                    self.device, cfg.seed * 100_003 + epoch)
        loss_sum = torch.tensor(self.partial["loss"], dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.float64, device=self.device) + self.partial["correct"]
        seen = self.partial["seen"]
        t0 = time.perf_counter() - self.partial["seconds"]
        step = start_step
        batches = iter(dl)
        try:
            while True:
                # stop before fetching: the next batch's augmentation must not draw from the RNG state
                # that last.pt records
                stop, _ = self.sync_flags(self.ctx.stopped, False)
                if stop:
                    raise JobStopped()
                if not self.info.enabled:
                    self.ctx.check()  # pause / stop (the workbench and the CLI's signals)
                try:
                    x, idx, err = next(batches)
                except StopIteration:
                    break
                y = self.train_labels[idx]
                if any(err):  # a file that broke since the scan: drop it from the batch, list it once
                    ok = torch.tensor([not e for e in err])
                    for i, e in zip(idx.tolist(), err):
                        if e:
                            self.skipped[self.p.train[i].path] = e
                    x, y = x[ok], y[ok]
                    if len(y) == 0:
                        step += 1
                        self.scheduler_step()
                        continue
                x, y = self.to_input(x), y.to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    logits = self.ddp(x)
                    loss = self.criterion(logits, y)
                value = loss.item()
                _, bad = self.sync_flags(False, not math.isfinite(value))
                if bad:
                    raise TrainingDiverged(
                        f"The training loss became {value} at epoch {epoch}, step {step + 1}/{steps} "
                        f"(lr {self.optimizer.param_groups[-1]['lr']:.2e}). Lower the learning rate "
                        f"(e.g. --lr {cfg.lr / 10:.0e}) or set --grad-clip 1.0. The last good checkpoint "
                        f"(epoch {self.epoch}) is kept in {self.p.run_dir}.")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if cfg.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_([q for g in self.optimizer.param_groups for q in g["params"]],
                                             cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler_step()
                step += 1
                n = len(y)
                loss_sum += value * n
                correct += (logits.detach().argmax(1) == y).sum()
                seen += n
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                if self.info.is_main:
                    self.ctx.progress(BatchEnded(epoch, step, steps, value, rate), force=step == steps)
        except JobStopped:
            self.partial = {"loss": float(loss_sum), "correct": float(correct), "seen": seen,
                            "seconds": time.perf_counter() - t0}
            self.save("last.pt", self.payload(step))
            self.log(f"stopped at epoch {epoch}, step {step}/{steps}: last.pt saved; "
                     f"continue with tlbench train --resume {self.p.run_dir}")
            raise
        seconds = time.perf_counter() - t0
        self.partial = {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
        total_loss, total_correct, total_seen = D.all_sum(self.info, [float(loss_sum), float(correct), seen],
                                                          self.device)
        self.epoch_sums = {"loss": float(loss_sum), "correct": float(correct), "seen": seen, "seconds": seconds}
        return {"train_loss": total_loss / max(total_seen, 1), "train_acc": total_correct / max(total_seen, 1),
                "images_per_s": total_seen / max(seconds, 1e-9)}

    def scheduler_step(self) -> None:
        self.scheduler.step()

    def validate(self) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        """(val loss, val acc) reduced across ranks, and this rank's logits and labels."""
        self.model.eval()
        dl = data_loader(self.val_ds, batch_size=self.cfg.batch_size, num_workers=self.workers,
                         pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers else None)
        logits_all = torch.empty(len(self.val_ds), len(self.p.info.classes))
        keep = torch.ones(len(self.val_ds), dtype=torch.bool)
        with torch.inference_mode():
            for x, idx, err in dl:
                if not self.info.enabled:
                    self.ctx.check()
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    logits = self.model(self.to_input(x))
                logits_all[idx] = logits.float().cpu()
                for i, e in zip(idx.tolist(), err):
                    if e:
                        keep[i] = False
                        self.skipped[self.p.val[self.val_index[i]].path] = e
        logits_k, labels_k = logits_all[keep], self.val_labels[keep]
        loss = nn.functional.cross_entropy(logits_k, labels_k, reduction="sum").item() if len(labels_k) else 0.0
        correct = float((logits_k.argmax(1) == labels_k).sum()) if len(labels_k) else 0.0
        total_loss, total_correct, n = D.all_sum(self.info, [loss, correct, float(len(labels_k))], self.device)
        if n == 0:
            return float("nan"), float("nan"), logits_all, keep
        return total_loss / n, total_correct / n, logits_all, keep

    # -- the run

    def run(self) -> dict:
        cfg = self.cfg
        writer = tensorboard_writer(self.p)
        started = time.perf_counter()
        early = False
        try:
            if self.resume_state is None:
                self.enter_phase(0)
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                idx = phase_index(self.phases, epoch)
                if idx != self.phase_id:
                    self.enter_phase(idx)
                t0 = time.perf_counter()
                row = {"epoch": epoch, **self.train_epoch(epoch)}
                try:
                    val_loss, val_acc, logits, keep = self.validate()
                except JobStopped:
                    # the epoch's training is complete: a resume goes straight to its validation
                    self.partial = dict(self.epoch_sums)
                    self.save("last.pt", self.payload(self.steps_per_epoch(epoch)))
                    self.log(f"stopped during validation of epoch {epoch}: last.pt saved")
                    raise
                row.update({"val_loss": val_loss, "val_acc": val_acc, "lr": self.optimizer.param_groups[-1]["lr"],
                            "seconds": time.perf_counter() - t0})
                self.epoch = epoch
                self.history.append(row)
                improved = (val_acc > self.best["val_acc"]
                            or (val_acc == self.best["val_acc"] and val_loss < self.best["val_loss"]))
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
        return self.summary(time.perf_counter() - started, early)

    def summary(self, seconds: float, early: bool) -> dict:
        last = self.history[-1] if self.history else {}
        rates = [h["images_per_s"] for h in self.history if h.get("images_per_s")]
        for path, reason in sorted(self.skipped.items()):
            self.log(f"skipped {path}: {reason}", "warning")
        return {
            "val_acc": last.get("val_acc"), "best_val_acc": self.best["val_acc"], "best_epoch": self.best["epoch"],
            "epochs": self.epoch, "early_stopped": early,
            "train_images": len(self.p.train), "val_images": len(self.p.val),
            "skipped_images": len(self.p.info.unreadable) + len(self.skipped),
            "images_per_s": round(sum(rates) / len(rates), 2) if rates else None,
            "train_seconds": round(seconds, 3),
        }


def write_final_report(trainer: Trainer, ctx: JobContext) -> dict | None:
    """report.json for best.pt: from the best epoch's validation logits when this process has them, else an
    evaluation pass over the validation split."""
    from engine.evaluation import build_report, evaluate_run, save_report

    p = trainer.p
    if not trainer.info.is_main or not (p.run_dir / "best.pt").exists():
        return None
    if trainer.best_logits is not None:
        order, logits = trainer.best_logits
        labels = torch.tensor([p.val[i].label for i in order], dtype=torch.long)
        report = build_report(logits, labels, [p.val[i].path for i in order], p.info.classes)
        save_report(p.run_dir, report, p.prep)
        return report
    evaluate_run(p.run_dir, ctx=None, device=str(p.device.type), batch_size=p.config.batch_size,
                 workers=p.config.workers)
    from engine.runs import read_json

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

