"""`attack_job(params, ctx)`: attack image files — predictions before and after, L-inf and L2 norms, the
adversarial image and the amplified perturbation as PNGs, a StepEnded per step; optionally the transfer to
a second backbone. The attack functions themselves are in engine.adversarial.attacks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.adversarial.attacks import norms, run_attack
from engine.adversarial.common import fast_copy, job_dtype, output_root, probabilities, quantized
from engine.adversarial.dreams import target_in
from engine.adversarial.params import AttackParams, eps_text
from engine.adversarial.render import amplified_perturbation, rendered, save_png
from engine.adversarial.target import load_target_model, resolve_class
from engine.core.events import JobStarted, ProgressAdvanced, StepEnded
from engine.core.files import atomic_write_json
from engine.core.outputs import timestamped
from engine.data.images import ImageProblem
from engine.data.loaders import load_for_model
from engine.models.predictions import top_predictions
from engine.runtime.devices import describe_device
from engine.runtime.precision import precision_name

if TYPE_CHECKING:
    from engine.adversarial.target import TargetModel
    from engine.core.jobs import JobContext


# ------------------------------------------------------------------------------------ the attack job


def _describe(params: AttackParams) -> str:
    if params.method == "gd":
        return f"gd ({params.steps} steps, lr {params.alpha:g}, tv {params.tv_weight:g})"
    if params.method == "fgsm":
        return f"fgsm eps {eps_text(params.eps)}"
    return (f"pgd {params.norm} eps {eps_text(params.eps)}, {params.steps} steps of {params.alpha:.4g}"
            + (", random start" if params.random_start else ""))


def attack_job(params: AttackParams, ctx: JobContext) -> dict:
    """Attack each image: PNGs of the original, the adversarial image and the amplified perturbation,
    predictions before and after, the achieved norms, and the target probability at every step
    (StepEnded("attack") events). An unreadable image gets an error entry; the others still run."""

    params.validate()
    device_name, why = describe_device(params.device)
    device = torch.device(device_name)
    tm = load_target_model(params.run_dir, params.backbone, device, params.img_size)
    dtype = job_dtype(device, params.precision, tm)
    target = resolve_class(params.target, tm.classes, tm.name) if params.target is not None else None
    eval_tm = None
    if params.eval_on:
        eval_tm = load_target_model(backbone=params.eval_on, device=device)
    size = tm.prep.crop_size
    model = fast_copy(tm, device, size, dtype)
    eval_model = fast_copy(eval_tm, device, size, dtype) if eval_tm is not None else None
    eval_target = None
    if eval_tm is not None and target is not None:

        eval_target = target if tm.run_dir is None else target_in(eval_tm.classes, tm.classes[target])
    label = f"{params.backbone}-{params.method}" if params.backbone else params.method
    out_dir = Path(params.out).expanduser() if params.out else timestamped(output_root(tm, "attacks"), label)
    out_dir.mkdir(parents=True, exist_ok=True)
    aim = f"toward {tm.classes[target]!r} ({target})" if target is not None else "untargeted"
    ctx.emit(JobStarted("attack", f"{_describe(params)} {aim} on {tm.name}",
                        str(tm.run_dir) if tm.run_dir else None))
    ctx.log(f"device: {device_name} ({why}), {precision_name(dtype)}; {len(params.images)} image(s) at {size} px; "
            f"PNGs in {out_dir}")
    generator = torch.Generator().manual_seed(params.seed)
    results, started = [], time.perf_counter()
    ctx.result.update({"model": tm.name, "out_dir": str(out_dir), "results": results})  # what a stop leaves
    for n, path in enumerate(params.images, 1):
        ctx.check()
        try:
            x = load_for_model(path, tm.prep).unsqueeze(0).to(device).float().div(255)
        except ImageProblem as err:
            results.append({"path": str(path), "error": str(err)})
            ctx.log(f"skipped {path}: {err}", "warning")
            continue
        results.append(_attack_one(params, ctx, model, tm, x, path, n, target, eval_model, eval_tm, eval_target,
                                   out_dir, generator))
        ctx.progress(ProgressAdvanced("attack", n, len(params.images), "images"), force=True)
    done = [r for r in results if "error" not in r]
    summary = {
        "model": tm.name,
        "run_dir": str(tm.run_dir) if tm.run_dir else None,
        "method": params.method,
        "norm": params.norm if params.method != "gd" else None,
        "eps": params.eps if params.method != "gd" else None,
        "eps_text": eps_text(params.eps) if params.method != "gd" else None,
        "step_size": params.alpha,
        "steps": params.steps,
        "random_start": params.random_start,
        "precision": precision_name(dtype),
        "target": {"index": target, "class": tm.classes[target], "asked": str(params.target)}
        if target is not None else None,
        "eval_on": params.eval_on,
        "out_dir": str(out_dir),
        "images": len(params.images),
        "attacked": len(done),
        "failed": len(results) - len(done),
        "succeeded": sum(1 for r in done if r["success"]),
        "seconds": round(time.perf_counter() - started, 3),
        "results": results,
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def _attack_one(params: AttackParams, ctx: JobContext, model: nn.Module, tm: TargetModel, x: torch.Tensor,
                path: str, n: int, target: int | None, eval_model, eval_tm, eval_target, out_dir: Path,
                generator: torch.Generator) -> dict:
    classes, k, steps = tm.classes, params.top_k, params.steps
    assert steps is not None  # params.validate() filled in the method's default
    clean = probabilities(model, x)[0]
    label = int(clean.argmax())
    aim = target if target is not None else label
    labels = torch.tensor([aim], device=x.device)
    curve: list[float] = []
    label_curve: list[float] = []

    def on_step(step: int, logits: torch.Tensor, loss: torch.Tensor) -> None:
        probs = logits.softmax(1)[0]
        values = {"loss": float(loss), "label_prob": float(probs[label])}
        label_curve.append(values["label_prob"])
        if target is not None:
            values["target_prob"] = float(probs[target])
            curve.append(values["target_prob"])
        ctx.emit(StepEnded("attack", step, steps, values))

    adv = run_attack(model, x, labels, method=params.method, eps=params.eps, steps=steps,
                     alpha=params.alpha, norm=params.norm, random_start=params.random_start,
                     targeted=target is not None, tv_weight=params.tv_weight, generator=generator,
                     on_step=on_step, check=ctx.check)
    after = probabilities(model, adv)[0]
    saved = probabilities(model, quantized(adv))[0]
    linf, l2 = (float(v[0]) for v in norms(adv, x))

    def succeeded(p: torch.Tensor) -> bool:
        return int(p.argmax()) == target if target is not None else int(p.argmax()) != label

    stem = f"{n:02d}-{Path(path).stem}"
    files = {"original": out_dir / f"{stem}-original.png", "adversarial": out_dir / f"{stem}-adversarial.png",
             "perturbation": out_dir / f"{stem}-perturbation.png"}
    save_png(files["original"], x)
    save_png(files["adversarial"], adv)
    save_png(files["perturbation"], amplified_perturbation(adv - x))
    values = {"linf": linf, "l2": l2, "success": float(succeeded(after))}
    if target is not None:
        values["target_prob"] = float(after[target])
    for kind, img in (("attack-original", x), ("attack-adversarial", adv),
                      ("attack-perturbation", amplified_perturbation(adv - x))):
        event = rendered(kind, steps, img, files[kind.split("-")[1]], values)
        ctx.emit(event)
    result = {
        "path": str(path),
        "label": {"index": label, "class": classes[label], "prob": round(float(clean[label]), 6)},
        "before": top_predictions(clean, classes, k),
        "after": top_predictions(after, classes, k),
        "success": succeeded(after),
        "label_prob_after": round(float(after[label]), 6),
        "linf": round(linf, 6),
        "linf_255": round(linf * 255, 3),
        "l2": round(l2, 6),
        "png": {"class": classes[int(saved.argmax())], "index": int(saved.argmax()),
                "prob": round(float(saved.max()), 6), "success": succeeded(saved)},
        "files": {k_: str(v) for k_, v in files.items()},
        "label_prob_per_step": [round(p, 6) for p in label_curve],
    }
    if target is not None:
        result["target_prob"] = round(float(after[target]), 6)
        result["target_prob_per_step"] = [round(p, 6) for p in curve]
    if eval_model is not None:
        e_clean, e_adv = probabilities(eval_model, x)[0], probabilities(eval_model, adv)[0]
        e_label = int(e_clean.argmax())
        ev = {"backbone": params.eval_on, "before": top_predictions(e_clean, eval_tm.classes, k),
              "after": top_predictions(e_adv, eval_tm.classes, k)}
        if target is not None and eval_target is not None:
            ev["target_prob"] = round(float(e_adv[eval_target]), 6)
            ev["success"] = int(e_adv.argmax()) == eval_target
        elif target is None:
            ev["success"] = int(e_adv.argmax()) != e_label
        else:
            ev["note"] = f"{classes[target]!r} is not one of {eval_tm.name}'s classes"
        result["eval_on"] = ev
    verdict = "fooled" if result["success"] else "held"
    ctx.log(f"{path}: {classes[label]} {float(clean[label]):.3f} -> {result['after'][0]['class']} "
            f"{result['after'][0]['prob']:.3f} ({verdict}; L-inf {linf * 255:.2f}/255, L2 {l2:.3f})")
    return result

