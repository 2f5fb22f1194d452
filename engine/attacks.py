"""Adversarial examples: FGSM, PGD (L-inf and L2), the lesson's unbounded gradient descent; robustness sweeps.

Images are in [0, 1] and the model normalises them itself (engine.models.Classifier), so eps, step sizes and
the reported norms are in pixel units: eps 4/255 lets every pixel move by 4 grey levels.

The attack functions work on a batch and a frozen model; they are plain PyTorch and match torchattacks'
PGD/FGSM step for step. `attack_job(params, ctx)` attacks image files (PNGs, predictions before and after,
norms, a StepEnded per step); `robustness_job(params, ctx)` measures robust accuracy per eps on a run's
validation split and stores it in the run's report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError, choice_error
from engine.events import JobStarted, ProgressAdvanced, StepEnded
from engine.imaging import amplified_perturbation, rendered, save_png, total_variation
from engine.precision import PRECISIONS, autocast, autocast_dtype, precision_name

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.targets import TargetModel

METHODS = ("pgd", "fgsm", "gd")
NORMS = ("linf", "l2")
DEFAULT_STEPS = {"pgd": 10, "fgsm": 1, "gd": 100}
# The lesson steps by eta = 1 on VGG fed unnormalised inputs. Our model divides by the ImageNet std (~0.226)
# inside, so the same step measured in the network's input units is 1 * 0.226^2 ~ 0.05 here.
DEFAULT_GD_LR = 0.05
DEFAULT_SWEEP = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)

# (step, logits of the image the step started from, loss) -> None
StepFn = Callable[[int, torch.Tensor, torch.Tensor], None]


# ------------------------------------------------------------------------------------ the attacks


def _labels_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)  # mean over the batch, as torchattacks does


def fgsm(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, targeted: bool = False,
         on_step: StepFn | None = None) -> torch.Tensor:
    """One signed-gradient step of size eps: away from `labels`, or toward them when targeted."""
    x = x.detach()
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    loss = _labels_loss(logits, labels)
    grad = torch.autograd.grad(loss, xg)[0]
    if on_step is not None:
        on_step(1, logits.detach(), loss.detach())
    step = -grad.sign() if targeted else grad.sign()
    return (x + eps * step).clamp(0, 1).detach()


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(p=2, dim=1).view(-1, 1, 1, 1)


def random_start_point(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """A uniformly random point of the eps-ball around x (L-inf: a cube; L2: a ball), clipped to [0, 1].

    The noise is drawn on the CPU from `generator` (a CPU generator), then moved to x's device: the same seed
    gives the same start on every device.
    """
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device) * 2 - 1
        return (x + eps * noise).clamp(0, 1)
    direction = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    direction = direction / _l2_norms(direction).clamp_min(1e-12)
    d = x[0].numel()
    # uniform in the ball: the radius's density grows as r^(d-1), hence the 1/d power
    radius = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    radius = radius ** (1.0 / d) * eps
    return (x + direction * radius.view(-1, 1, 1, 1)).clamp(0, 1)


def pgd(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, eps: float, alpha: float, steps: int,
        norm: str = "linf", random_start: bool = False, targeted: bool = False,
        generator: torch.Generator | None = None, on_step: StepFn | None = None,
        check: Callable[[], None] | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al.): `steps` steps of size `alpha`, each projected back onto
    the eps-ball around x and into [0, 1]. L-inf steps follow the gradient's sign, L2 steps its direction.

    Untargeted it maximises the cross-entropy of `labels`; targeted it minimises the cross-entropy of
    `labels` (the targets). The arithmetic is torchattacks' PGD / PGDL2, so both agree to float precision.
    """
    x = x.detach()
    adv = random_start_point(x, eps, norm, generator) if random_start else x.clone()
    for step in range(1, steps + 1):
        if check is not None:
            check()
        adv.requires_grad_(True)
        logits = model(adv)
        loss = _labels_loss(logits, labels)
        grad = torch.autograd.grad(loss, adv)[0]
        if on_step is not None:
            on_step(step, logits.detach(), loss.detach())
        if targeted:
            grad = -grad
        if norm == "linf":
            adv = adv.detach() + alpha * grad.sign()
            delta = torch.clamp(adv - x, min=-eps, max=eps)
        else:
            grad = grad / (_l2_norms(grad) + 1e-10)
            adv = adv.detach() + alpha * grad
            delta = adv - x
            factor = torch.clamp(eps / delta.flatten(1).norm(p=2, dim=1), max=1.0)
            delta = delta * factor.view(-1, 1, 1, 1)
        adv = torch.clamp(x + delta, min=0, max=1).detach()
    return adv


def gradient_descent(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, steps: int,
                     lr: float = DEFAULT_GD_LR, tv_weight: float = 0.0, targeted: bool = True,
                     on_step: StepFn | None = None, check: Callable[[], None] | None = None) -> torch.Tensor:
    """The lesson's attack: plain gradient descent on the pixels, x <- x - lr * grad, with no bound on
    the change (only [0, 1]). Targeted it descends the target's cross-entropy, untargeted it ascends the
    label's; `tv_weight` adds total variation (on [0, 1] pixels) to keep the change smooth."""
    x = x.detach()
    adv = x.clone()
    for step in range(1, steps + 1):
        if check is not None:
            check()
        adv.requires_grad_(True)
        logits = model(adv)
        ce = _labels_loss(logits, labels)
        loss = ce if targeted else -ce
        if tv_weight:
            loss = loss + tv_weight * total_variation(adv).mean()
        grad = torch.autograd.grad(loss, adv)[0]
        if on_step is not None:
            on_step(step, logits.detach(), ce.detach())
        adv = (adv.detach() - lr * grad).clamp(0, 1)
    return adv.detach()


def norms(adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (L-inf, L2) of the perturbation, in [0, 1] pixel units."""
    d = (adv - x).flatten(1)
    return d.abs().max(dim=1).values, d.norm(p=2, dim=1)


def default_step_size(method: str, eps: float, steps: int) -> float:
    """PGD: 2.5 * eps / steps (Madry et al.: enough to cross the ball and move along it); FGSM: eps."""
    if method == "fgsm":
        return eps
    if method == "gd":
        return DEFAULT_GD_LR
    return 2.5 * eps / steps


def run_attack(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, method: str, eps: float,
               steps: int, alpha: float, norm: str = "linf", random_start: bool = False,
               targeted: bool = False, tv_weight: float = 0.0, generator: torch.Generator | None = None,
               on_step: StepFn | None = None, check: Callable[[], None] | None = None) -> torch.Tensor:
    if method == "fgsm":
        if norm != "linf":
            raise ConfigError("FGSM is an L-inf attack: use --norm linf, or --method pgd --norm l2.")
        return fgsm(model, x, labels, eps, targeted, on_step)
    if method == "pgd":
        return pgd(model, x, labels, eps=eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start,
                   targeted=targeted, generator=generator, on_step=on_step, check=check)
    if method == "gd":
        return gradient_descent(model, x, labels, steps=steps, lr=alpha, tv_weight=tv_weight,
                                targeted=targeted, on_step=on_step, check=check)
    raise choice_error("attack method", method, METHODS)


# ------------------------------------------------------------------------------------ parameters


def parse_eps(text: str | float) -> float:
    """'4/255', '0.0157' or a number -> float. The range is checked by the parameter classes."""
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"eps {text!r} is not a number: write it like 4/255 or 0.0157.") from None


def eps_text(eps: float) -> str:
    """8/255 for values on the 1/255 grid, else the number."""
    n = eps * 255
    if eps and abs(n - round(n)) < 1e-9:
        return f"{round(n)}/255"
    return f"{eps:g}"


def check_eps(eps: float, flag: str = "--eps") -> None:
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and 0 <= eps <= 1):
        raise ConfigError(f"{flag} {eps} is out of range: eps is in pixel units of [0, 1] images, so use a "
                          "value from 0 to 1, e.g. 4/255 (4 grey levels).")


def check_steps(steps) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 100_000:
        raise ConfigError(f"--steps {steps} is out of range: use a whole number of steps from 1 to 100000.")


PRECISION_HELP = ("auto | fp32 | bf16 | fp16: autocast inside the model's forward (the image and its "
                  "gradient stay fp32); auto is bf16/fp16 on CUDA, fp32 elsewhere")


def check_precision(value) -> None:
    if value not in PRECISIONS:
        raise choice_error("precision", value, PRECISIONS)


def _check_step_size(value) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1e6):
        raise ConfigError(f"--step-size {value} is out of range: use a positive number, e.g. 1/255.")


@dataclass
class AttackParams:
    """An attack on image files, validated by `validate()`; the CLI and the workbench fill it."""

    images: list[str] = field(default_factory=list, metadata={"help": "image files"})
    run_dir: str | None = field(default=None, metadata={"help": "a trained run (its classes)"})
    backbone: str | None = field(default=None, metadata={"help": "a backbone's ImageNet head"})
    method: str = field(default="pgd", metadata={"help": "pgd | fgsm | gd (the lesson's unbounded descent)"})
    norm: str = field(default="linf", metadata={"help": "linf | l2 (pgd)"})
    eps: float = field(default=4 / 255, metadata={"help": "perturbation budget in [0, 1] pixel units"})
    step_size: float | None = field(default=None, metadata={"help": "step size (default: pgd 2.5*eps/steps, "
                                                                     "fgsm eps, gd 0.05)"})
    steps: int | None = field(default=None, metadata={"help": "steps (default: pgd 10, gd 100)"})
    random_start: bool = field(default=False, metadata={"help": "pgd: start at a random point of the ball"})
    target: str | None = field(default=None, metadata={"help": "class to reach (name or index); none: "
                                                               "untargeted, away from the predicted class"})
    tv_weight: float = field(default=0.0, metadata={"help": "gd: total-variation weight on [0, 1] pixels"})
    eval_on: str | None = field(default=None, metadata={"help": "a second backbone to test transfer on"})
    out: str | None = field(default=None, metadata={"help": "folder for the PNGs (default: under the run or "
                                                            "runs/attacks)"})
    img_size: int | None = field(default=None, metadata={"help": "input size in px (default: the model's)"})
    top_k: int = field(default=5, metadata={"help": "predictions listed before and after"})
    seed: int = field(default=0, metadata={"help": "random seed (random start)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | mps"})
    precision: str = field(default="auto", metadata={"help": PRECISION_HELP})

    def validate(self) -> "AttackParams":
        check_precision(self.precision)
        if self.method not in METHODS:
            raise choice_error("attack method", self.method, METHODS)
        if self.norm not in NORMS:
            raise choice_error("norm", self.norm, NORMS)
        if self.method == "fgsm" and self.norm != "linf":
            raise ConfigError("FGSM is an L-inf attack: use --norm linf, or --method pgd --norm l2.")
        self.eps = parse_eps(self.eps)
        check_eps(self.eps)
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.method]
        check_steps(self.steps)
        if self.method == "fgsm":
            self.steps = 1
        if self.step_size is not None:
            self.step_size = parse_eps(self.step_size)
        _check_step_size(self.step_size)
        if not (isinstance(self.tv_weight, (int, float)) and math.isfinite(self.tv_weight) and self.tv_weight >= 0):
            raise ConfigError(f"--tv-weight {self.tv_weight} is out of range: use 0 or a positive weight.")
        if self.img_size is not None and not (isinstance(self.img_size, int) and 32 <= self.img_size <= 1024):
            raise ConfigError(f"--img-size {self.img_size} is out of range: use 32 to 1024 pixels.")
        if not (isinstance(self.top_k, int) and self.top_k >= 1):
            raise ConfigError(f"--top-k {self.top_k} is out of range: use 1 or more.")
        if not self.images:
            raise ConfigError("No images to attack: pass one or more image files.")
        if self.run_dir is None and self.backbone is None:
            from engine.backbones import DEFAULT_BACKBONE

            self.backbone = DEFAULT_BACKBONE
        return self

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else default_step_size(self.method, self.eps,
                                                                                    self.steps or 1)


# ------------------------------------------------------------------------------------ shared job parts


class AutocastForward(nn.Module):
    """A model whose forward runs under autocast (engine.precision) and returns fp32 logits.

    Reduced precision lives inside the network only: the image (an attack's adversarial tensor, a dream's
    parameters) stays fp32 and so does its gradient, since autocast casts a copy of the input for each op
    and backward casts the gradient back to the input's dtype.
    """

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype):
        super().__init__()
        self.model = model
        self.device = device
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            logits = self.model(x)
        return logits.float()


def fast_copy(tm: TargetModel, device: torch.device, size: int, dtype: torch.dtype | None = None) -> nn.Module:
    """A copy of the model with BatchNorm folded into the convolutions and channels_last (about 2x faster
    forward and backward on a CPU), under autocast to `dtype` when one is given (engine.precision).
    engine.features checks the folded copy against the original and falls back; the original (possibly
    shared, see engine.targets) is not touched."""
    from engine.features import inference_copy

    model = inference_copy(tm.model, device, size)
    return AutocastForward(model, device, dtype) if dtype is not None else model


@torch.no_grad()
def top_predictions(probs: torch.Tensor, classes: list[str], k: int) -> list[dict]:
    top = probs.topk(min(k, len(classes)))
    return [{"class": classes[i], "index": int(i), "prob": round(float(p), 6)}
            for p, i in zip(top.values.tolist(), top.indices.tolist())]


@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).float().softmax(1).cpu()


def quantized(x: torch.Tensor) -> torch.Tensor:
    """The image as an 8-bit PNG stores it."""
    return x.mul(255).round().div(255)


def _stamp_dir(tm: TargetModel, kind: str, label: str) -> Path:
    from engine.runs import runs_root, safe_name

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = tm.run_dir / kind if tm.run_dir is not None else runs_root() / kind
    path = base / f"{stamp}-{safe_name(label)}"
    i = 2
    while path.exists():
        path = base / f"{stamp}-{safe_name(label)}-{i}"
        i += 1
    return path


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
    from engine.devices import describe_device
    from engine.images import ImageProblem
    from engine.preprocess import load_for_model
    from engine.runs import atomic_write_json
    from engine.targets import load_target_model, resolve_class

    params.validate()
    device_name, why = describe_device(params.device)
    device = torch.device(device_name)
    dtype = autocast_dtype(device, params.precision)
    tm = load_target_model(params.run_dir, params.backbone, device, params.img_size)
    target = resolve_class(params.target, tm.classes, tm.name) if params.target is not None else None
    eval_tm = None
    if params.eval_on:
        eval_tm = load_target_model(backbone=params.eval_on, device=device)
    size = tm.prep["crop_size"]
    model = fast_copy(tm, device, size, dtype)
    eval_model = fast_copy(eval_tm, device, size, dtype) if eval_tm is not None else None
    eval_target = None
    if eval_tm is not None and target is not None:
        from engine.dreams import target_in

        eval_target = target if tm.run_dir is None else target_in(eval_tm.classes, tm.classes[target])
    label = f"{params.backbone}-{params.method}" if params.backbone else params.method
    out_dir = Path(params.out).expanduser() if params.out else _stamp_dir(tm, "attacks", label)
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
    classes, k = tm.classes, params.top_k
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
        ctx.emit(StepEnded("attack", step, params.steps, values))

    adv = run_attack(model, x, labels, method=params.method, eps=params.eps, steps=params.steps,
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
        event = rendered(kind, params.steps, img, files[kind.split("-")[1]], values)
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


# ------------------------------------------------------------------------------------ robustness


@dataclass
class RobustnessParams:
    """A robustness sweep of a trained run over its validation split."""

    run_dir: str = field(default="", metadata={"help": "a trained run"})
    data: str | None = field(default=None, metadata={"help": "the dataset (default: the run's)"})
    eps: list[float] = field(default_factory=lambda: list(DEFAULT_SWEEP),
                             metadata={"help": "budgets in [0, 1] pixel units; 0 = clean accuracy"})
    method: str = field(default="pgd", metadata={"help": "pgd | fgsm"})
    norm: str = field(default="linf", metadata={"help": "linf | l2 (pgd)"})
    steps: int = field(default=10, metadata={"help": "pgd steps"})
    step_size: float | None = field(default=None, metadata={"help": "step size (default 2.5*eps/steps)"})
    random_start: bool = field(default=False, metadata={"help": "pgd: random start in the ball"})
    batch_size: int = field(default=32, metadata={"help": "images per batch"})
    limit: int | None = field(default=None, metadata={"help": "attack at most this many validation images"})
    seed: int = field(default=0, metadata={"help": "random seed (random start)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | mps"})
    precision: str = field(default="auto", metadata={"help": PRECISION_HELP})
    workers: int | None = field(default=None, metadata={"help": "DataLoader workers (default: auto)"})

    def validate(self) -> "RobustnessParams":
        check_precision(self.precision)
        if self.method not in ("pgd", "fgsm"):
            raise choice_error("robustness method", self.method, ("pgd", "fgsm"))
        if self.norm not in NORMS:
            raise choice_error("norm", self.norm, NORMS)
        if self.method == "fgsm" and self.norm != "linf":
            raise ConfigError("FGSM is an L-inf attack: use --norm linf, or --method pgd --norm l2.")
        if not self.eps:
            raise ConfigError("--eps is empty: give budgets like 0,1/255,2/255,4/255,8/255.")
        self.eps = [parse_eps(e) for e in self.eps]
        for e in self.eps:
            check_eps(e)
        self.eps = sorted(set(self.eps))
        check_steps(self.steps)
        if self.step_size is not None:
            self.step_size = parse_eps(self.step_size)
        _check_step_size(self.step_size)
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 4096):
            raise ConfigError(f"--batch-size {self.batch_size} is out of range: use 1 to 4096.")
        if self.limit is not None and not (isinstance(self.limit, int) and self.limit >= 1):
            raise ConfigError(f"--limit {self.limit} is out of range: use 1 or more images.")
        if not self.run_dir:
            raise ConfigError("No run given: pass a run directory (runs/<…>).")
        return self

    @property
    def key(self) -> str:
        return f"{self.method}-{self.norm}"


def parse_eps_list(text: str) -> list[float]:
    """'0,1/255,2/255' -> floats (ranges checked by RobustnessParams)."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    if not parts:
        raise ConfigError("--eps is empty: give budgets like 0,1/255,2/255,4/255,8/255.")
    return [parse_eps(p) for p in parts]


def validation_samples(record: dict, data: str | None, ctx: JobContext):
    """The run's validation split, recomputed from its dataset, seed and val_fraction."""
    from engine.datasets import scan_run_dataset, split_dataset
    from engine.errors import RunError

    info = scan_run_dataset(record["dataset"], data or None, ctx=ctx)
    if list(info.classes) != list(record["classes"]):
        raise RunError(f"The dataset at {info.root} has classes {info.classes}, but the run was trained on "
                       f"{record['classes']}. Pass the run's dataset with --data.")
    _, val = split_dataset(info, record.get("val_fraction", 0.2), record.get("seed", 0))
    return info, val


def robustness_job(params: RobustnessParams, ctx: JobContext) -> dict:
    """Robust accuracy per eps on the run's validation split, the way Foolbox reports it: an image counts
    as robust at eps when the model classifies it correctly and no attack at eps or below changes that
    (eps 0 is the clean accuracy). Saved in the run's report.json under "robustness" -> "<method>-<norm>"."""

    from engine.devices import describe_device
    from engine.preprocess import ImageFiles, auto_workers, data_loader
    from engine.runs import read_json, update_report
    from engine.targets import load_target_model

    params.validate()
    device_name, why = describe_device(params.device)
    device = torch.device(device_name)
    dtype = autocast_dtype(device, params.precision)
    tm = load_target_model(run_dir=params.run_dir, device=device)
    info, val = validation_samples(tm.record, params.data, ctx)
    if params.limit:
        val = val[: params.limit]
    if not val:
        raise ConfigError(f"The validation split of {info.root} is empty: nothing to attack.")
    model = fast_copy(tm, device, tm.prep["crop_size"], dtype)
    ctx.emit(JobStarted("robustness", f"{params.method} {params.norm} sweep of {tm.name}", str(tm.run_dir)))
    ctx.log(f"device: {device_name} ({why}), {precision_name(dtype)}; {len(val)} validation images; eps "
            + ", ".join(eps_text(e) for e in params.eps))
    workers = params.workers if params.workers is not None else auto_workers(device)
    loader = data_loader(ImageFiles([s.path for s in val], tm.prep), batch_size=params.batch_size,
                         num_workers=workers)
    labels_all = torch.tensor([s.label for s in val], dtype=torch.long, device="cpu")
    correct = {e: 0 for e in params.eps}
    counted, skipped = 0, []
    generator = torch.Generator().manual_seed(params.seed)
    started = time.perf_counter()
    total_work = len(val) * len(params.eps)
    for xb, idx, errors in loader:
        keep = [j for j, err in enumerate(errors) if not err]
        skipped += [{"path": val[int(idx[j])].path, "reason": errors[j]} for j, err in enumerate(errors) if err]
        if not keep:
            continue
        x = xb[keep].to(device).float().div(255)
        y = labels_all[idx[keep]].to(device)
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        for e in params.eps:  # ascending
            ctx.check()
            if e > 0:
                alpha = params.step_size if params.step_size is not None else default_step_size(
                    params.method, e, params.steps)
                adv = run_attack(model, x, y, method=params.method, eps=e, steps=params.steps, alpha=alpha,
                                 norm=params.norm, random_start=params.random_start, generator=generator,
                                 check=ctx.check)
                # An adversarial example found at a smaller eps also lies in this larger ball, so it counts
                # here too: the curve never rises because one attack run happened to do worse.
                with torch.no_grad():
                    robust = robust & (model(adv).argmax(1) == y)
            correct[e] += int(robust.sum())
            done = counted * len(params.eps) + len(keep) * (params.eps.index(e) + 1)
            ctx.progress(ProgressAdvanced("robustness", done, total_work, "image-attacks"))
        counted += len(keep)
    if counted == 0:
        raise ConfigError(f"None of the {len(val)} validation images could be read; see `tlbench scan`.")
    rows = [{"eps": e, "eps_text": eps_text(e), "accuracy": round(correct[e] / counted, 6),
             "correct": correct[e], "images": counted} for e in params.eps]
    sweep = {
        "method": params.method, "norm": params.norm,
        "steps": params.steps if params.method == "pgd" else 1,
        "step_size": params.step_size if params.step_size is not None else (
            "2.5*eps/steps" if params.method == "pgd" else "eps"),
        "random_start": params.random_start,
        "precision": precision_name(dtype),
        "dataset": str(info.root), "images": counted, "skipped": skipped,
        "eps": [r["eps"] for r in rows], "accuracy": [r["accuracy"] for r in rows], "rows": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report_path = Path(tm.run_dir) / "report.json"
    existing = read_json(report_path).get("robustness", {}) if report_path.exists() else {}
    if not isinstance(existing, dict):
        existing = {}
    update_report(tm.run_dir, {"robustness": {**existing, params.key: sweep}})
    for r in rows:
        ctx.log(f"eps {r['eps_text']:>7}: robust accuracy {r['accuracy']:.4f} ({r['correct']}/{r['images']})")
    return {"run_dir": str(tm.run_dir), "key": params.key, **sweep}
