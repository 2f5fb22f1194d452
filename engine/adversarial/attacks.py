"""Adversarial examples: FGSM, PGD (L-inf and L2) and the lesson's unbounded gradient descent.

Images are in [0, 1] and the model normalises them itself (engine.models.classifier.Classifier), so eps, step
sizes and the reported norms are in pixel units: eps 4/255 lets every pixel move by 4 grey levels.
The functions work on a batch and a frozen model; they are plain PyTorch and match torchattacks' PGD/FGSM
step for step. The jobs that use them: engine.adversarial.attack_job and engine.adversarial.robustness.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.adversarial.params import DEFAULT_GD_LR, METHODS
from engine.adversarial.render import total_variation
from engine.core.errors import ConfigError, choice_error

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
