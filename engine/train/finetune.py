"""Fine-tuning on images: the head, partial and full modes, with checkpoints that resume exactly.

- head: the backbone frozen, in eval mode (its BatchNorm statistics never move), a new head trained on
  augmented images.
- partial: the backbone's last N stages (engine.models.stages) trained with the head; the frozen ones stay in eval.
- full: fastai's `fine_tune`: `freeze_epochs` epochs with the backbone frozen (one-cycle, pct_start 0.99),
  then everything unfrozen with discriminative learning rates (fastai's slice(lr/100, lr): the head at lr,
  the last stage at lr/10, down to lr/100 for the first) under a second one-cycle schedule at half the rate.

This is the job driver, as torchvision's references' `main`: `FineTuning` sets the model, its phases and its
data up (lr-find shares it), `train_finetune` runs the epochs with engine.train.loop's `train_one_epoch` and
`evaluate`, keeps a `TrainState` (engine.train.state) and writes the run. DataLoader workers decode uint8
images, the model normalises on the device, autocast (engine.runtime.precision: bf16 or fp16 on CUDA by default,
any precision when asked) and channels_last (on CUDA and CPU by default). Each sample's augmentation has its
own seed (seed, epoch, sample), so it is the same with any number of workers or ranks and after a resume.
Every epoch ends with last.pt (and best.pt when the validation accuracy improves, ties broken by the lower
loss); a stop (the workbench, Ctrl+C, SIGTERM, SIGHUP) saves last.pt at the step it reached.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from engine.core.checkpoints import save_checkpoint
from engine.core.errors import ConfigError
from engine.core.events import CheckpointSaved, EpochEnded
from engine.core.files import read_json
from engine.core.jobs import JobContext, JobStopped
from engine.core.runs import append_metrics, save_config
from engine.data.loaders import ImageFiles, auto_workers, data_loader, training_workers
from engine.evaluate.evaluation import build_report, evaluate_run, save_report
from engine.models.classifier import Classifier
from engine.models.fast import inference_copy
from engine.models.stages import backbone_stages, describe
from engine.runtime import distributed as D
from engine.runtime.precision import (
    dtype_of,
    needs_grad_scaler,
    resolve_precision,
    training_precision,
    use_channels_last,
)
from engine.runtime.precision_auto import measure_model
from engine.runtime.seeding import derived_seed
from engine.train.augment import DropBadFiles, epoch_indices, train_loader, training_files
from engine.train.loop import Loop, Mixer, Step, evaluate, train_one_epoch
from engine.train.prepare import Prepared
from engine.train.probe import improves
from engine.train.recipe import (
    make_optimizer,
    make_scheduler,
    param_groups,
    phase_index,
    plan_phases,
    set_bn_momentum,
    set_train_mode,
    set_trainable,
)
from engine.train.state import RANK_STREAM, TrainState

TENSORBOARD_MISSING = ("--tensorboard needs the tensorboard package, which is not installed. Install it with "
                       "pip install 'tlbench[tensorboard]' (or pip install tensorboard), or drop --tensorboard.")


def check_tensorboard(cfg) -> None:
    """Fail before any work when --tensorboard cannot work."""
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401  (an optional dependency: imported only when asked for)
        except ImportError:
            raise ConfigError(TENSORBOARD_MISSING) from None


def tensorboard_writer(p: Prepared):
    if not p.config.tensorboard or not p.dist.is_main:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package
    except ImportError:
        raise ConfigError(TENSORBOARD_MISSING) from None
    return SummaryWriter(log_dir=str(p.run_dir / "tensorboard"))


def training_dtype(p: Prepared, model: Classifier) -> torch.dtype | None:
    """The run's autocast dtype, decided once and recorded in config.json (precision_resolved, and why) before
    the first step. `auto` measures the backbone's forward pass on this device once (remembered, and shared
    with extraction; the measurement cannot move the run's random streams); under torchrun rank 0 decides for
    all. A resumed run replays what it recorded, whatever this machine would choose today."""
    size = p.prep.crop_size

    def measure(names: list[str]) -> dict[str, float]:
        fast = inference_copy(model, p.device, size)  # eval mode, a copy: the training model is untouched
        return measure_model(fast, p.device, size, names, forward=fast.features)

    recorded = p.record.get("precision_resolved") if p.resumed else None
    decided: tuple[str, str] | None = None
    if recorded:
        decided = (recorded, p.record.get("precision_reason") or "recorded by the run")
    elif p.dist.is_main:
        decided = resolve_precision(p.device, training_precision(p.config.precision, p.config.amp),
                                    backbone=p.config.backbone, measure=measure)
    decided = D.broadcast(p.dist, decided)
    assert decided is not None  # rank 0 sends its choice
    name, why = decided
    if recorded:
        if p.dist.is_main:
            p.ctx.log(f"precision: {name}, as the run recorded ({why})")
    else:
        if p.dist.is_main:
            p.ctx.log(f"precision: {name} ({why})")
        p.record.update({"precision_resolved": name, "precision_reason": why})
        if p.dist.is_main:
            save_config(p.run_dir, p.record)
    return dtype_of(name)


class FineTuning:
    """The model, its phases and its data as fine-tuning runs them: built once per run, shared by the epochs
    below and by lr-find (engine.train.lr_find). It holds no loop and no progress (TrainState does)."""

    def __init__(self, p: Prepared, ctx: JobContext, new_head: bool = True):
        self.p, self.ctx, self.cfg, self.info, self.device = p, ctx, p.config, p.dist, p.device
        # prepare() resolved both: a seed is drawn when none was given, epochs default per mode
        assert p.config.seed is not None and p.config.epochs is not None
        self.seed: int = p.config.seed
        self.epochs: int = p.config.epochs
        self.model = p.model.to(self.device)
        # engine.runtime.precision's choice (auto: measured on this device for this backbone); fp16 alone
        # needs loss scaling
        self.dtype = training_dtype(p, self.model)
        self.channels_last = use_channels_last(self.device, self.cfg.channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.cfg.compile:  # in place: the state_dict keeps the model's own keys (no "_orig_mod.")
            self.model.compile()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=needs_grad_scaler(self.device, self.dtype))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.cfg.label_smoothing)
        self.stages = backbone_stages(self.model.backbone)
        self.phases = plan_phases(self.cfg, len(self.stages))
        self.trainable = []
        self.ddp: nn.Module = self.model
        self.workers = training_workers(self.device, self.cfg.workers, self.cfg.decoded_cache)
        # decoded once into the decoded-image cache (engine.data.decoded), unless --no-decoded-cache; the
        # one-time decode is a JPEG decoder's work, so it gets workers even where the epochs read in place
        builders = auto_workers(self.device) if self.cfg.workers is None else self.cfg.workers
        self.train_ds = training_files([s.path for s in p.train], p.prep, self.cfg.augment, self.cfg.decoded_cache,
                                       builders, self.info, ctx)
        self.log("data loading: " + (f"{self.workers} worker process(es)" if self.workers else "in this process")
                 + (" (--workers)" if self.cfg.workers is not None else ""))
        # labels stay on the host: the collate_fn picks each batch's there, and they travel with the batch
        labels = torch.tensor([s.label for s in p.train], dtype=torch.long, device="cpu")
        self.train_collate = DropBadFiles(labels, self.train_ds.paths)
        mine = p.val[self.info.rank::self.info.world_size]  # each rank validates its share, no padding
        self.val_index = list(range(len(p.val)))[self.info.rank::self.info.world_size]
        self.val_ds = ImageFiles([s.path for s in mine], p.prep)
        labels = torch.tensor([s.label for s in mine], dtype=torch.long, device="cpu")
        self.val_collate = DropBadFiles(labels, self.val_ds.paths)
        self.log(f"stages of {self.cfg.backbone}: {describe(self.stages)}")
        if new_head:  # a new head starts small, as the probe's does: pretrained features are large
            head = self.model.head
            assert isinstance(head, nn.Linear)  # build_classifier gives a run's classes a Linear head
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
            if self.info.enabled:
                torch.manual_seed(derived_seed(self.seed, RANK_STREAM, self.info.rank))
        self.model.dropout.p = self.cfg.dropout  # training only: nn.Dropout is the identity in eval mode
        self.mixer = Mixer(self.cfg.mix, len(p.info.classes)) if self.cfg.mix != "none" else None
        # --ema: the average validates and is what best.pt / last.pt hold as "model" (eval, predict and export
        # use it); the raw weights ride along as "model_raw" for a resume
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.ema_decay), use_buffers=True)
                    if self.cfg.ema else None)

    def log(self, text: str, level: str = "info") -> None:
        if self.info.is_main:
            self.ctx.log(text, level)

    def steps_per_epoch(self, epoch: int) -> int:
        n = len(epoch_indices(len(self.p.train), self.cfg.batch_size, self.seed, epoch, self.info))
        return max(1, math.ceil(n / self.cfg.batch_size))

    def train_loader(self, epoch: int, start_step: int = 0) -> DataLoader:
        """This rank's batches of epoch `epoch` from step `start_step` on (a resumed epoch starts mid-way)."""
        order = epoch_indices(len(self.p.train), self.cfg.batch_size, self.seed, epoch, self.info)
        return train_loader(self.train_ds, order[start_step * self.cfg.batch_size:], self.cfg.batch_size,
                            self.workers, self.device, self.seed, epoch, self.train_collate)

    def val_loader(self) -> DataLoader:
        return data_loader(self.val_ds, batch_size=self.cfg.batch_size, num_workers=self.workers,
                           pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers else None,
                           collate_fn=self.val_collate)

    def train_mode(self) -> None:
        """Train mode but for what the phase keeps frozen (engine.train.recipe.set_train_mode)."""
        set_train_mode(self.model, self.stages, self.trainable, self.cfg.train_bn)

    def enter_phase(self, idx: int, state: TrainState | None = None, schedule: bool = True) -> Step:
        """Train phase `idx`'s parameters with a new optimizer and, unless `schedule` is False (lr-find sets the
        rates itself), its one-cycle scheduler, which also rewrites the groups' rates and momentum. `state`
        takes them (and a resumed run's saved states for this phase)."""
        ph = self.phases[idx]
        # DDP registers the parameters that require grad when it wraps: the old wrapper goes before they change
        D.unwrap(self.ddp)
        self.ddp = self.model
        self.trainable = set_trainable(self.model, self.stages, ph.trainable)
        if self.cfg.train_bn:
            set_bn_momentum(self.trainable)
        groups = param_groups(self.model, self.stages, self.trainable, ph.lr, self.cfg.weight_decay)
        self.log_phase(idx, groups)
        optimizer = make_optimizer(self.cfg, groups)
        total = sum(self.steps_per_epoch(e) for e in range(ph.first, ph.last + 1))
        scheduler = make_scheduler(optimizer, ph, total) if schedule else None
        self.ddp = D.wrap(self.model, self.info, self.device)
        if state is not None:
            state.attach(idx, optimizer, scheduler)
        return Step(self.model, self.ddp, optimizer, scheduler, self.scaler, self.criterion, self.device,
                    self.dtype, self.channels_last, self.cfg.grad_clip or 0.0, self.mixer, self.ema)

    def log_phase(self, idx: int, groups: list[dict]) -> None:
        """The phase's peak rates as the optimizer's groups hold them (fastai's spread over the stages, or a timm
        transformer's layer-wise decay), not recomputed here."""
        ph, n = self.phases[idx], len(self.stages)
        when = f"epochs {ph.first}-{ph.last}" if ph.last > ph.first else f"epoch {ph.first}"
        if ph.trainable:
            names = ", ".join(s.name for s in self.trainable)
            what = "all stages" if ph.trainable == n else f"the last {ph.trainable} stage(s)"
            rate = {g["name"]: g["lr"] for g in groups if not g["name"].endswith(" (no decay)")}
            rate.update({g["name"][:-len(" (no decay)")]: g["lr"] for g in groups
                         if g["name"].endswith(" (no decay)") and g["name"][:-len(" (no decay)")] not in rate})
            last, first = self.trainable[-1].name, self.trainable[0].name
            self.log(f"{when}: training {what} ({names}) and the head; lr {rate.get('head', ph.lr):.2e} for the "
                     f"head, {rate.get(last, float('nan')):.2e} for {last} down to "
                     f"{rate.get(first, float('nan')):.2e} for {first}")
        else:
            self.log(f"{when}: backbone frozen (BatchNorm in eval mode), training the head, lr {ph.lr:.2e}")


# ------------------------------------------------------------------------------------------------ the run


def checkpoint(ft: FineTuning, state: TrainState) -> dict:
    """last.pt / best.pt: the state, with the run's config and classes. Every rank calls it (a collective).
    With --ema, "model" is the average (what eval, predict and export load) and "model_raw" the trained weights."""
    payload = {"config": ft.p.record, "classes": ft.p.info.classes, **state.state_dict(ft.info)}
    if ft.ema is not None:
        payload["model_raw"], payload["model"] = payload["model"], ft.ema.module.state_dict()
        payload["ema_n_averaged"] = int(ft.ema.n_averaged)
    return payload


def save(ft: FineTuning, name: str, payload: dict) -> None:
    if ft.info.is_main:
        save_checkpoint(ft.p.run_dir / name, payload)


def train_finetune(p: Prepared, ctx: JobContext, resume: dict | None = None) -> dict:
    """The head, partial and full modes (see the module docstring); returns the run summary."""
    check_tensorboard(p.config)
    ft = FineTuning(p, ctx, new_head=resume is None)
    state = TrainState(ft.model, ft.scaler)
    step = None
    if resume is not None:
        if "model_raw" in resume:  # an --ema run: the average goes back into the EMA, the raw weights train on
            if ft.ema is not None:
                ft.ema.module.load_state_dict(resume["model"])
                ft.ema.n_averaged.fill_(int(resume.get("ema_n_averaged", 1)))
            resume = {**resume, "model": resume["model_raw"]}
        state.load_state_dict(resume, ft.info, ft.seed)
        if state.epoch < ft.epochs:
            step = ft.enter_phase(phase_index(ft.phases, state.epoch + 1), state)
        where = f"epoch {state.epoch + 1}, step {state.step}" if state.step else f"epoch {state.epoch + 1}"
        ft.log(f"resumed from last.pt: {state.epoch} epoch(s) done; continuing at {where}")
    try:
        result = fit(ft, state, step)
    except JobStopped:
        if state.best_logits is not None:  # a stopped run still gets its report when it costs nothing
            write_final_report(ft, state)
        raise
    report = write_final_report(ft, state)
    if report is not None:
        result["report"] = str(p.run_dir / "report.json")
        result["top5"] = report.get("top5")
    return result


def fit(ft: FineTuning, state: TrainState, step: Step | None) -> dict:
    """The epochs from `state` on: train, validate, write metrics and checkpoints, stop early."""
    cfg, ctx = ft.cfg, ft.ctx
    loop = Loop(ctx, ft.info, ft.p.run_dir, cfg.lr)
    writer = tensorboard_writer(ft.p)
    started, paused_at_start = time.perf_counter(), ctx.paused_seconds
    early = False
    try:
        for epoch in range(state.epoch + 1, ft.epochs + 1):
            idx = phase_index(ft.phases, epoch)
            if step is None or idx != state.phase:
                step = ft.enter_phase(idx, state)
            t0, paused0 = time.perf_counter(), ctx.paused_seconds
            steps = ft.steps_per_epoch(epoch)
            ft.train_mode()
            try:
                row = {"epoch": epoch, **train_one_epoch(step, ft.train_loader(epoch, state.step), state, loop,
                                                         epoch, steps)}
            except JobStopped:
                save(ft, "last.pt", checkpoint(ft, state))
                ft.log(f"stopped at epoch {epoch}, step {state.step}/{steps}: last.pt saved; "
                       f"continue with tlbench train --resume {ft.p.run_dir}")
                raise
            try:
                judged = step if ft.ema is None else replace(step, model=ft.ema.module)
                val_loss, val_acc, logits, keep = evaluate(judged, ft.val_loader(), len(ft.p.info.classes), state,
                                                           loop)
            except JobStopped:  # the epoch's training is complete: a resume goes straight to its validation
                save(ft, "last.pt", checkpoint(ft, state))
                ft.log(f"stopped during validation of epoch {epoch}: last.pt saved")
                raise
            paused = ctx.paused_seconds - paused0
            row.update({"val_loss": val_loss, "val_acc": val_acc, "lr": step.optimizer.param_groups[-1]["lr"],
                        "seconds": time.perf_counter() - t0 - paused, "paused_seconds": round(paused, 3)})
            end_epoch(ft, state, row, logits, keep, writer)
            if cfg.patience and state.bad_epochs >= cfg.patience and epoch < ft.epochs:
                ft.log(f"early stopping: no better validation accuracy for {cfg.patience} epoch(s); "
                       f"best {state.best['val_acc']:.4f} at epoch {state.best['epoch']}")
                early = True
                break
    finally:
        if writer is not None:
            writer.close()
    paused = ctx.paused_seconds - paused_at_start
    return summary(ft, state, time.perf_counter() - started - paused, early, paused)


def end_epoch(ft: FineTuning, state: TrainState, row: dict, logits: torch.Tensor, keep: torch.Tensor,
              writer) -> None:
    """An epoch trained and validated: the best so far, metrics.jsonl, last.pt (best.pt), the events."""
    epoch, ctx = row["epoch"], ft.ctx
    state.epoch_validated(epoch)
    state.history.append(row)
    improved = improves(row["val_acc"], row["val_loss"], state.best)
    if improved:
        state.best = {"val_acc": row["val_acc"], "val_loss": row["val_loss"], "epoch": epoch}
        state.bad_epochs = 0
        gathered = D.gather(ft.info, ([ft.val_index[i] for i in range(len(keep)) if keep[i]], logits[keep]))
        order = [i for part in gathered for i in part[0]]
        state.best_logits = (order, torch.cat([part[1] for part in gathered]))
    else:
        state.bad_epochs += 1
    payload = checkpoint(ft, state)
    if ft.info.is_main:
        append_metrics(ft.p.run_dir, row)
        save(ft, "last.pt", payload)
        if improved:
            save(ft, "best.pt", payload)
            ctx.emit(CheckpointSaved(str(ft.p.run_dir / "best.pt"), epoch, best=True))
        ctx.emit(CheckpointSaved(str(ft.p.run_dir / "last.pt"), epoch))
        metrics = {k: row[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s")}
        ctx.emit(EpochEnded(epoch, ft.epochs, metrics, row["seconds"]))
        if writer is not None:
            for k, v in metrics.items():
                writer.add_scalar(k, v, epoch)
            writer.flush()
    ctx.result.update({"epochs": epoch, "val_acc": row["val_acc"], "best_val_acc": state.best["val_acc"],
                       "best_epoch": state.best["epoch"]})


def summary(ft: FineTuning, state: TrainState, seconds: float, early: bool, paused: float = 0.0) -> dict:
    """The run's result (called on every rank at its end: the ranks' skipped files are gathered)."""
    p = ft.p
    last = state.history[-1] if state.history else {}
    rates = [h["images_per_s"] for h in state.history if h.get("images_per_s")]
    # every rank lists the files that broke in its own shard
    state.skipped = {path: why for part in D.gather(ft.info, state.skipped) for path, why in part.items()}
    for path, reason in sorted(state.skipped.items()):
        ft.log(f"skipped {path}: {reason}", "warning")
    return {
        "val_acc": last.get("val_acc"), "best_val_acc": state.best["val_acc"], "best_epoch": state.best["epoch"],
        "epochs": state.epoch, "early_stopped": early,
        "train_images": len(p.train), "val_images": len(p.val),
        "skipped_images": len(p.info.unreadable) + len(state.skipped),
        "images_per_s": round(sum(rates) / len(rates), 2) if rates else None,
        "train_seconds": round(seconds, 3), "paused_seconds": round(paused, 3),
    }


def write_final_report(ft: FineTuning, state: TrainState) -> dict | None:
    """report.json for best.pt: from the best epoch's validation logits when this process has them, else an
    evaluation pass over the validation split."""
    p = ft.p
    if not ft.info.is_main or not (p.run_dir / "best.pt").exists():
        return None
    if state.best_logits is not None and not p.config.tta:  # --tta: eval's pass averages the mirror images
        order, logits = state.best_logits
        labels = torch.tensor([p.val[i].label for i in order], dtype=torch.long, device="cpu")
        report = build_report(logits, labels, [p.val[i].path for i in order], p.info.classes)
        save_report(p.run_dir, report, p.prep)
        return report
    evaluate_run(p.run_dir, ctx=None, device=str(p.device.type), batch_size=p.config.batch_size,
                 workers=p.config.workers)
    return read_json(p.run_dir / "report.json")
