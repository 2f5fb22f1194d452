"""`dream_job(params, ctx)`: render a class's "ideal" image (engine.adversarial.dreams) against a run, a
backbone or an ensemble of backbones, with previews as events, the PNG saved without overwriting, and how the
model (and the judges of --eval-on, backbones or other runs) sees the result. Several classes make a gallery:
one dream each in turn, then a contact sheet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.adversarial.common import fast_copy, job_dtype, output_root
from engine.adversarial.dreams import DreamParams, DreamResult, dream, judge, target_in
from engine.adversarial.render import contact_sheet, rendered, rendered_array, save_png, save_png_array
from engine.adversarial.target import load_target_model, resolve_class
from engine.core.errors import ConfigError, RunError
from engine.core.events import JobStarted, ProgressAdvanced, StepEnded
from engine.core.jobs import JobStopped
from engine.core.outputs import timestamped
from engine.core.runs import resolve_run_dir, runs_root
from engine.runtime.devices import describe_device
from engine.runtime.precision import precision_name

if TYPE_CHECKING:
    from engine.adversarial.target import TargetModel
    from engine.core.jobs import JobContext


def _out_path(tm: TargetModel, params: DreamParams, class_name: str, suffix_labels: tuple[str, ...] = ()) -> Path:
    """The PNG: --out when it names one; else a new time-stamped name in --out's folder, or under the run
    (RUN/dreams) or the runs root (runs/dreams, with the backbone in the name)."""
    labels = [class_name, params.recipe, *suffix_labels]
    if tm.run_dir is None:
        labels = ["+".join(params.backbones), *labels]
    if not params.out:
        return timestamped(output_root(tm, "dreams"), *labels, suffix=".png")
    out = Path(params.out).expanduser()
    if out.suffix.lower() == ".png":
        return out
    return timestamped(out, *labels, suffix=".png")


def load_judge(name: str, device: torch.device) -> TargetModel:
    """An --eval-on entry: a run directory (by path or name under the runs root), else a backbone name."""
    try:
        run = resolve_run_dir(name, runs_root())
    except RunError:
        return load_target_model(backbone=name, device=device)
    return load_target_model(run_dir=run, device=device)


def index_in(other: TargetModel, tm: TargetModel, target: int) -> int | None:
    """The class's index in another model: the same index between two ImageNet heads, else by name."""
    if other.run_dir is None and tm.run_dir is None:
        return target
    return target_in(other.classes, tm.classes[target])


def dream_job(params: DreamParams, ctx: JobContext) -> dict:
    """The job: a StepEnded("dream", …) every step with the target probability, a preview ImageRendered
    ("dream-preview", pixels included) every `preview_every` steps, then the final image ("dream") and the
    summary. Several classes: one dream after the other (steps counted across them), each saved, then the
    contact sheet (ImageRendered "dream-gallery") and a summary with one entry per class under "dreams".
    Stopped early, it still saves the image reached so far (the result says "stopped")."""

    params.validate()
    device_name, why = describe_device(params.device)
    device = torch.device(device_name)
    members = params.backbones if params.run_dir is None else [None]
    tm = load_target_model(params.run_dir, members[0], device)
    dtype = job_dtype(device, params.precision, tm)
    targets = [resolve_class(t, tm.classes, tm.name) for t in params.targets]  # every name checked first
    size = params.img_size or tm.prep.crop_size
    model = fast_copy(tm, device, size, dtype)
    ensemble = []
    for name in members[1:]:
        other = load_target_model(backbone=name, device=device)
        if other.classes != tm.classes:
            raise ConfigError(f"The ensemble's backbones must share their classes: {name} has "
                              f"{len(other.classes)}, {members[0]} {len(tm.classes)}.")
        ensemble.append(fast_copy(other, device, size, dtype))
    judges = [(name, load_judge(name, device)) for name in params.judges]
    n, steps = len(targets), params.steps
    assert steps is not None  # validate() gave the recipe's default
    on = " + ".join(params.backbones) if tm.run_dir is None else tm.name
    what = tm.classes[targets[0]] if n == 1 else f"{n} classes"
    ctx.emit(JobStarted("dream", f"{params.recipe} dream of {what!r} on {on}",
                        str(tm.run_dir) if tm.run_dir else None))
    ctx.log(f"device: {device_name} ({why}), {precision_name(dtype)}; {steps} steps at {size} px")
    dreams, stopped = [], False
    for i, target in enumerate(targets):
        result, stopped = _dream_one(params, ctx, model, [(m, target) for m in ensemble], target, size, i, n)
        out_path = _out_path(tm, params, tm.classes[target])
        save_png(out_path, result.image)
        summary = _summary(params, tm, target, size, result, out_path, model, judges, stopped)
        summary["precision"] = precision_name(dtype)
        first = summary["eval_on"][0] if summary["eval_on"] else {}
        ctx.emit(rendered("dream", i * steps + result.steps_done, result.image, out_path, {
            "target_prob": summary["probability"], "class_index": float(target),
            **({"eval_prob": first["probability"]} if "probability" in first else {}),
        }))
        ctx.log(_line(summary, tm.name))
        dreams.append((summary, result.image))
        if stopped:
            break
    final = dreams[0][0] if n == 1 else _gallery(params, ctx, tm, dreams, stopped)
    if stopped:
        ctx.result.update(final)
        raise JobStopped()
    return final


def _dream_one(params: DreamParams, ctx: JobContext, model: nn.Module, ensemble: list, target: int, size: int,
               i: int, n: int) -> tuple[DreamResult, bool]:
    """One class's dream, its steps numbered after the classes before it."""
    steps = params.steps
    assert steps is not None  # validate() gave the recipe's default
    total = steps * n

    def on_step(step: int, prob: float, loss: float, image: nn.Module) -> None:
        at = i * steps + step
        # the class with each step: a gallery's plot draws one line per class (issue 24)
        ctx.emit(StepEnded("dream", at, total, {"target_prob": prob, "loss": loss, "class_index": float(target)}))
        ctx.progress(ProgressAdvanced("dream", at, total, "steps"), force=at == total)
        if params.preview_every and step % params.preview_every == 0 and step != steps:
            with torch.no_grad():
                x = image().detach()
            ctx.emit(rendered("dream-preview", at, x, values={"target_prob": prob, "class_index": float(target)}))

    try:
        return dream(model, target, recipe=params.recipe, steps=steps, size=size, lr=params.lr,
                     tv_weight=params.tv_weight, l2_weight=params.l2_weight, jitter_px=params.jitter,
                     crops=params.crops, ensemble=ensemble, seed=params.seed, on_step=on_step,
                     check=ctx.check), False
    except JobStopped as stop:
        return stop.partial, True


def _line(summary: dict, name: str) -> str:
    line = f"{summary['target']['class']}: probability {summary['probability']:.3f} (rank {summary['rank']}) on {name}"
    for e in summary["eval_on"]:
        if "probability" in e:
            line += f"; {e['probability']:.3f} (rank {e['rank']}) on {e['backbone']}"
    return line + f"; saved {summary['path']}"


def _first_judge(summary: dict) -> dict | None:
    return next((e for e in summary["eval_on"] if "rank" in e), None)


def _caption(summary: dict) -> str:
    """A contact sheet tile's caption: the class, then how the first judge (else the model) ranks it."""
    e = _first_judge(summary)
    who, rank, prob = (e["backbone"], e["rank"], e["probability"]) if e else ("", summary["rank"],
                                                                            summary["probability"])
    return f"{summary['target']['class']}\n{who.replace('efficientnet_', '')} #{rank} {prob:.2f}".strip()


def _gallery(params: DreamParams, ctx: JobContext, tm: TargetModel, dreams: list, stopped: bool) -> dict:
    """The contact sheet of the dreams made (saved beside them) and the gallery's summary."""
    summaries = [s for s, _ in dreams]
    sheet = contact_sheet([x for _, x in dreams], [_caption(s) for s in summaries])
    path = _out_path(tm, params, "gallery")
    save_png_array(path, sheet)
    ctx.emit(rendered_array("dream-gallery", len(dreams), sheet, path))
    # judged by the first judge that has the class (an ImageNet backbone has no class of a run)
    judged = [e for e in (_first_judge(s) for s in summaries) if e is not None]
    ctx.log(f"contact sheet: {path}" + (f"; {sum(e['rank'] == 1 for e in judged)} of {len(judged)} ranked "
                                        f"first by {judged[0]['backbone']}" if judged else ""))
    return {
        "recipe": params.recipe, "model": summaries[0]["model"], "run_dir": summaries[0]["run_dir"],
        "classes": [s["target"]["class"] for s in summaries], "steps": params.steps, "stopped": stopped,
        "seconds": round(sum(s["seconds"] for s in summaries), 3), "path": str(path), "contact_sheet": str(path),
        "precision": summaries[0]["precision"], "dreams": summaries,
        **({"recognised": sum(e["rank"] == 1 for e in judged), "judged": len(judged)} if judged else {}),
    }


def _summary(params: DreamParams, tm: TargetModel, target: int, size: int, result: DreamResult, out_path: Path,
             model: nn.Module, judges: list[tuple[str, TargetModel]], stopped: bool) -> dict:
    class_name = tm.classes[target]
    seen = judge(model, result.image, tm.classes, target)
    summary = {
        "target": {"index": target, "class": class_name, "asked": str(params.targets[0] if len(params.targets) == 1
                                                                      else class_name)},
        "model": tm.name if tm.run_dir or len(params.backbones) < 2 else " + ".join(params.backbones),
        "run_dir": str(tm.run_dir) if tm.run_dir else None,
        "recipe": params.recipe,
        "steps": result.steps_done,
        "stopped": stopped,
        "img_size": size,
        "crops": params.crops if params.recipe == "maco" else 1,
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
        "eval_on": [],
    }
    for name, other in judges:
        eval_target = index_in(other, tm, target)
        entry = {"backbone": name, "model": other.name, **judge(other.model, result.image, other.classes,
                                                                 eval_target)}
        if eval_target is None:
            entry["note"] = f"{class_name!r} is not one of {other.name}'s classes"
        summary["eval_on"].append(entry)
    return summary
