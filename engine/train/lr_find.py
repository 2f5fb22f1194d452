"""The learning-rate range test (Smith 2015; fastai's `lr_find`): train for a few dozen steps while the rate
grows exponentially, record the smoothed loss, suggest a rate on the steepest part of the descent.

`lr_find(config, ctx)` runs on the model as the mode's first phase trains it (the head alone for head and
full, the last stages too for partial), writes RUN/lr_find.json and RUN/lr_find.png, and returns the
suggestion. Nothing is saved as a model: it is a measurement, not a training run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from engine.core.errors import ConfigError
from engine.core.events import StepEnded
from engine.core.files import atomic_write_json
from engine.train.config import TrainConfig

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

SMOOTHING = 0.98  # exponential moving average of the loss, debiased
DIVERGED = 4.0  # stop once the smoothed loss exceeds this multiple of the best seen


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    """(steepest, min_loss_lr / 10): the rate where the smoothed loss falls fastest (per decade, before its
    minimum), and the minimum's rate divided by ten (the classic rule of thumb)."""
    if len(lrs) < 5:
        return None, None
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    logs = [math.log10(lr) for lr in lrs]
    skip = max(1, len(lrs) // 10)  # the first steps are noise
    best, best_slope = None, 0.0
    for i in range(skip, max(skip + 1, lowest)):
        if i + 1 >= len(lrs):
            break
        slope = (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
        if slope < best_slope:
            best, best_slope = i, slope
    steepest = lrs[best] if best is not None else None
    return steepest, lrs[lowest] / 10


def lr_find(config: TrainConfig, ctx: JobContext, start_lr: float = 1e-7, end_lr: float = 10.0,
            steps: int = 100) -> dict:
    """The LR-finder job; returns {"suggested_lr", "min_loss_lr_div10", "run_dir", "points", ...}."""
    from engine.evaluate.plots import line_png
    from engine.train.augment import epoch_indices, train_loader
    from engine.train.finetune import Trainer
    from engine.train.prepare import prepare
    from engine.train.recipe import set_train_mode

    if config.mode == "probe":
        raise ConfigError("lr-find runs with the head, partial or full mode (a probe's head trains in seconds: "
                          "just try a few --lr values).")
    if not (0 < start_lr < end_lr):
        raise ConfigError(f"--start-lr {start_lr} must be positive and below --end-lr {end_lr}.")
    if steps < 10:
        raise ConfigError(f"--steps {steps} is too few for a range test: use 50 to 200.")
    p = prepare(config, ctx, kind="lr-find")
    trainer = Trainer(p, ctx)
    # the mode's first phase: its parameters, groups and planned rates, and no scheduler (one-cycle would set
    # every group to max_lr/25 and AdamW's beta1 to 0.95 before the first step)
    trainer.enter_phase(0, schedule=False)
    set_train_mode(trainer.model, trainer.stages, trainer.trainable, config.train_bn)
    ctx.log(f"lr range test: {steps} steps from {start_lr:.0e} to {end_lr:.0e}")
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    epoch, step = 0, 0
    while step < steps:
        epoch += 1
        at_start = step
        order = epoch_indices(len(p.train), config.batch_size, config.seed, epoch, trainer.info)
        for x, idx, err in train_loader(trainer.train_ds, order, config.batch_size, trainer.workers,
                                        trainer.device, config.seed, epoch):
            if step >= steps:
                break
            ctx.check()
            y = trainer.train_labels[idx]
            if any(err):  # a file that broke since the scan: not something to learn from
                ok = torch.tensor([not e for e in err], device="cpu")
                if not ok.any():
                    continue
                x, y = x[ok], y[ok]
            lr = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
            # the rate applied is the rate logged: each group at lr times its planned share (never from
            # param_groups' "lr", which the phase's scheduler has already rewritten)
            trainer.set_lr(lr)
            loss, _, _ = trainer.train_step(x, y)
            value = loss.item()  # every step's loss is a point of the curve: a sync per step is the job
            step += 1
            if not math.isfinite(value):
                break
            avg = SMOOTHING * avg + (1 - SMOOTHING) * value
            smooth = avg / (1 - SMOOTHING ** step)
            lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            best = min(best, smooth)
            ctx.progress(StepEnded("lr-find", step, steps, {"lr": lr, "loss": smooth}), force=step == steps)
            if smooth > DIVERGED * best and step > 5:
                break
        else:
            if step > at_start:
                continue  # the data ran out before the steps: another pass
        break  # done, diverged, or an epoch without one decodable batch
    steepest, rule = suggest(lrs, smoothed)
    suggestion = steepest or rule
    result = {"run_dir": str(p.run_dir), "suggested_lr": suggestion, "steepest_lr": steepest,
              "min_loss_lr_div10": rule, "points": len(lrs), "mode": config.mode,
              "curve": str(p.run_dir / "lr_find.png"), "data": str(p.run_dir / "lr_find.json")}
    atomic_write_json(p.run_dir / "lr_find.json", {**result, "lr": lrs, "loss": losses, "smoothed_loss": smoothed})
    line_png(lrs, smoothed, p.run_dir / "lr_find.png", f"lr range test: {config.backbone}, {config.mode} mode",
             "learning rate (log scale)", "smoothed loss", mark=suggestion)
    if suggestion:
        ctx.log(f"suggested --lr {suggestion:.1e} (steepest descent); minimum loss / 10: {rule:.1e}")
    else:
        ctx.log("no suggestion: the loss did not decrease; try a wider range or more --steps", "warning")
    ctx.result.update(result)
    return result
