"""`dream_job(params, ctx)`: render a class's "ideal" image (engine.adversarial.dreams) against a run or a
backbone, with previews as events, the PNG saved without overwriting, and how the model (and optionally a
second one) sees the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.adversarial.common import fast_copy, output_root
from engine.adversarial.render import rendered, save_png
from engine.core.events import JobStarted, ProgressAdvanced, StepEnded
from engine.core.jobs import JobStopped
from engine.core.outputs import timestamped
from engine.runtime.precision import autocast_dtype, precision_name

if TYPE_CHECKING:
    from engine.adversarial.target import TargetModel
    from engine.core.jobs import JobContext
from engine.adversarial.dreams import DreamParams, DreamResult, dream, judge, target_in
from engine.adversarial.target import load_target_model, resolve_class
from engine.runtime.devices import describe_device

# ------------------------------------------------------------------------------------ the job


def _out_path(tm: TargetModel, params: DreamParams, class_name: str) -> Path:
    """The PNG: --out when it names one; else a new time-stamped name in --out's folder, or under the run
    (RUN/dreams) or the runs root (runs/dreams, with the backbone in the name)."""
    labels = [class_name, params.recipe] if tm.run_dir is not None else [params.backbone or "", class_name,
                                                                          params.recipe]
    if not params.out:
        return timestamped(output_root(tm, "dreams"), *labels, suffix=".png")
    out = Path(params.out).expanduser()
    if out.suffix.lower() == ".png":
        return out
    return timestamped(out, *labels, suffix=".png")


def dream_job(params: DreamParams, ctx: JobContext) -> dict:
    """The job: a StepEnded("dream", …) every step with the target probability, a preview ImageRendered
    ("dream-preview", pixels included) every `preview_every` steps, then the final image ("dream") and the
    summary. Stopped early, it still saves the image reached so far (the result says "stopped")."""

    params.validate()
    device_name, why = describe_device(params.device)
    device = torch.device(device_name)
    dtype = autocast_dtype(device, params.precision)
    tm = load_target_model(params.run_dir, params.backbone, device)
    target = resolve_class(params.target, tm.classes, tm.name)
    class_name = tm.classes[target]
    eval_tm = load_target_model(backbone=params.eval_on, device=device) if params.eval_on else None
    size = params.img_size or tm.prep.crop_size
    model = fast_copy(tm, device, size, dtype)
    out_path = _out_path(tm, params, class_name)
    ctx.emit(JobStarted("dream", f"{params.recipe} dream of {class_name!r} ({target}) on {tm.name}",
                        str(tm.run_dir) if tm.run_dir else None))
    ctx.log(f"device: {device_name} ({why}), {precision_name(dtype)}; {params.steps} steps at {size} px")

    def on_step(step: int, prob: float, loss: float, image: nn.Module) -> None:
        ctx.emit(StepEnded("dream", step, params.steps, {"target_prob": prob, "loss": loss}))
        ctx.progress(ProgressAdvanced("dream", step, params.steps, "steps"), force=step == params.steps)
        if params.preview_every and step % params.preview_every == 0 and step != params.steps:
            with torch.no_grad():
                x = image().detach()
            ctx.emit(rendered("dream-preview", step, x, values={"target_prob": prob}))

    stopped = False
    try:
        result = dream(model, target, recipe=params.recipe, steps=params.steps, size=size, lr=params.lr,
                       tv_weight=params.tv_weight, l2_weight=params.l2_weight, jitter_px=params.jitter,
                       seed=params.seed, on_step=on_step, check=ctx.check)
    except JobStopped as stop:
        result, stopped = stop.partial, True
    save_png(out_path, result.image)
    summary = _summary(params, tm, target, size, result, out_path, model, eval_tm, stopped)
    summary["precision"] = precision_name(dtype)
    ctx.emit(rendered("dream", result.steps_done, result.image, out_path, {
        "target_prob": summary["probability"],
        **({"eval_prob": summary["eval_on"]["probability"]} if "probability" in summary.get("eval_on", {}) else {}),
    }))
    line = f"{class_name}: probability {summary['probability']:.3f} (rank {summary['rank']}) on {tm.name}"
    if "probability" in summary.get("eval_on", {}):
        line += f"; {summary['eval_on']['probability']:.3f} (rank {summary['eval_on']['rank']}) on {params.eval_on}"
    ctx.log(line + f"; saved {out_path}")
    if stopped:
        ctx.result.update(summary)
        raise JobStopped()
    return summary


def _summary(params: DreamParams, tm: TargetModel, target: int, size: int, result: DreamResult, out_path: Path,
             model: nn.Module, eval_tm: TargetModel | None, stopped: bool) -> dict:
    class_name = tm.classes[target]
    seen = judge(model, result.image, tm.classes, target)
    summary = {
        "target": {"index": target, "class": class_name, "asked": str(params.target)},
        "model": tm.name,
        "run_dir": str(tm.run_dir) if tm.run_dir else None,
        "recipe": params.recipe,
        "steps": result.steps_done,
        "stopped": stopped,
        "img_size": size,
        "lr": params.resolved_lr,
        "tv_weight": params.resolved_tv,
        "l2_weight": params.l2_weight,
        "jitter": params.jitter,
        "seed": params.seed,
        "seconds": round(result.seconds, 3),
        "seconds_per_step": round(result.seconds / max(1, result.steps_done), 5),
        "path": str(out_path),
        "probability": seen["probability"],
        "rank": seen["rank"],
        "top": seen["top"],
        "target_prob_per_step": [round(p, 6) for p in result.probs],
    }
    if eval_tm is not None:
        eval_target = target_in(eval_tm.classes, class_name) if tm.run_dir else target
        summary["eval_on"] = {"backbone": params.eval_on,
                              **judge(eval_tm.model, result.image, eval_tm.classes, eval_target)}
        if eval_target is None:
            summary["eval_on"]["note"] = f"{class_name!r} is not one of {eval_tm.name}'s classes"
    return summary

