"""The learning-rate range test (Smith 2015; fastai's `lr_find`): train for a few dozen steps while the rate
grows exponentially, record the smoothed loss, suggest a rate on the steepest part of the descent.

`lr_find(config, ctx)` runs on the model as the mode's first phase trains it (the head alone for head and
full, the last stages too for partial), writes RUN/lr_find.json and RUN/lr_find.png, and returns the
suggestion. Nothing is saved as a model: it is a measurement, not a training run.
"""

from __future__ import annotations

import math

from engine.core.errors import ConfigError
from engine.core.events import StepEnded
from engine.core.files import atomic_write_json
from engine.core.jobs import JobContext, JobStopped
from engine.evaluate.plots import line_png
from engine.runtime import distributed as D
from engine.train.config import TrainConfig
from engine.train.finetune import FineTuning
from engine.train.loop import train_step
from engine.train.prepare import Prepared, prepare

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


def agreed_loss(ft: FineTuning, ctx: JobContext, loss, usable: bool) -> float | None:
    """The step's loss as every rank sees it: the mean over the ranks that had a usable batch (None when none
    had), so under torchrun each rank takes the same decisions (skip, NaN, divergence, the end) at the same
    step and none waits for the others in a collective they left. A stop asked on any rank stops all."""
    stopped = ctx.stopped
    total, count, stops = D.all_sum(ft.info, [float(loss.item()) if usable else 0.0, int(usable), int(stopped)],
                                    ft.device)
    if stops:
        raise JobStopped()
    return total / count if count else None


def lr_find(config: TrainConfig, ctx: JobContext, start_lr: float = 1e-7, end_lr: float = 10.0,
            steps: int = 100) -> dict:
    """The LR-finder job; returns {"suggested_lr", "min_loss_lr_div10", "run_dir", "points", ...}."""
    if config.mode in ("probe", "auto"):
        raise ConfigError(f"lr-find runs with the head, partial or full mode, not --mode {config.mode} (its head "
                          "is fitted in seconds: a probe's by trying a few --lr values, auto's by its own search).")
    if not (0 < start_lr < end_lr):
        raise ConfigError(f"--start-lr {start_lr} must be positive and below --end-lr {end_lr}.")
    if steps < 10:
        raise ConfigError(f"--steps {steps} is too few for a range test: use 50 to 200.")
    p = prepare(config, ctx, kind="lr-find")
    try:
        return _range_test(p, config, start_lr, end_lr, steps)
    finally:
        D.teardown(p.dist)


def _range_test(p: Prepared, config: TrainConfig, start_lr: float, end_lr: float, steps: int) -> dict:
    ctx = p.ctx  # under torchrun, rank 0's logs and progress alone (prepare gave the others a silent one)
    ft = FineTuning(p, ctx)
    # the mode's first phase: its parameters, groups and planned rates, and no scheduler (one-cycle would set
    # every group to max_lr/25 and AdamW's beta1 to 0.95 before the first step)
    step = ft.enter_phase(0, schedule=False)
    base = ft.phases[0].lr
    planned = [g["lr"] for g in step.optimizer.param_groups]  # each group's planned share of `base`
    ft.train_mode()
    ctx.log(f"lr range test: {steps} steps from {start_lr:.0e} to {end_lr:.0e}")
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    epoch, done = 0, 0
    while done < steps:
        epoch += 1
        at_start = done
        for batch in ft.train_loader(epoch):
            if done >= steps:
                break
            if not ft.info.enabled:
                ctx.check()
                if not batch.usable:  # every file of the batch broke since the scan: nothing to learn from
                    continue
            lr = start_lr * (end_lr / start_lr) ** (done / (steps - 1))
            # the rate applied is the rate logged: each group at lr times its planned share (the head's is 1,
            # a stage's less in partial and full)
            for group, rate in zip(step.optimizer.param_groups, planned, strict=True):
                group["lr"] = lr * rate / base
            # the training loop's step; a batch whose files all broke takes part with weight 0 (under torchrun
            # the other ranks wait for it in DDP's gradient all-reduce)
            loss, _, _ = train_step(step, batch.images, batch.labels, 1.0 if batch.usable else 0.0)
            value = agreed_loss(ft, ctx, loss, batch.usable)  # a sync per step: each is a point of the curve
            if value is None:  # no rank had a usable batch
                continue
            done += 1
            if not math.isfinite(value):
                break
            avg = SMOOTHING * avg + (1 - SMOOTHING) * value
            smooth = avg / (1 - SMOOTHING ** done)
            lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            best = min(best, smooth)
            ctx.progress(StepEnded("lr-find", done, steps, {"lr": lr, "loss": smooth}), force=done == steps)
            if smooth > DIVERGED * best and done > 5:
                break
        else:
            if done > at_start:
                continue  # the data ran out before the steps: another pass
        break  # done, diverged, or an epoch without one decodable batch
    steepest, rule = suggest(lrs, smoothed)
    suggestion = steepest or rule
    result = {"run_dir": str(p.run_dir), "suggested_lr": suggestion, "steepest_lr": steepest,
              "min_loss_lr_div10": rule, "points": len(lrs), "mode": config.mode,
              "curve": str(p.run_dir / "lr_find.png"), "data": str(p.run_dir / "lr_find.json")}
    if p.dist.is_main:  # rank 0 alone writes the run (every rank has the same curve)
        atomic_write_json(p.run_dir / "lr_find.json", {**result, "lr": lrs, "loss": losses,
                                                       "smoothed_loss": smoothed})
        line_png(lrs, smoothed, p.run_dir / "lr_find.png", f"lr range test: {config.backbone}, {config.mode} mode",
                 "learning rate (log scale)", "smoothed loss", mark=suggestion)
    if suggestion:
        ctx.log(f"suggested --lr {suggestion:.1e} (steepest descent); minimum loss / 10: {rule:.1e}")
    else:
        ctx.log("no suggestion: the loss did not decrease; try a wider range or more --steps", "warning")
    ctx.result.update(result)
    return result
