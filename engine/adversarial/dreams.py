"""Class visualisation from noise ("dreams"): the image a network finds most like a class.

Three recipes:

- "maco" (the default): Fel et al.'s magnitude-constrained optimisation (engine.adversarial.maco): only the
  Fourier phase is optimised under the fixed magnitude of natural photos, every step averages the gradient over
  many random crops of the image (one batch, one forward), and the objective may pull on several networks at
  once (an ensemble). Its dreams are the ones another network recognises.
- "lesson": what the lesson teaches — the pixels themselves are optimised with cross-entropy toward the class
  plus a total-variation term, optionally with jitter. It fools the one network; to a person (and to another
  network) it mostly looks like noise.
- "robust": the Lucid/Lucent recipe that makes the image show the class. The image is
  parameterised in a decorrelated Fourier space (1/f scaled spectrum, colour-decorrelated channels, sigmoid
  to [0, 1]) and every step sees a randomly transformed copy (padding, jitter, small scale and rotation), so
  only features that survive those changes grow. The objective is the class logit.

`dream(...)` is the loop (a model and a class index in, an image out); `dream_job(params, ctx)` is the job
the CLI and the workbench run: it loads the model, resolves the class, saves the PNG, checks on a second
network (`eval_on`) and returns a summary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.adversarial.maco import PhaseImage, batched_crops
from engine.adversarial.params import (
    DEFAULT_CROPS,
    DEFAULT_DREAM_STEPS,
    DEFAULT_LR,
    LESSON_CE_WEIGHT,
    LESSON_TV_WEIGHT,
    RECIPES,
)
from engine.adversarial.params import DreamParams as DreamParams  # re-exported: callers import it from here
from engine.adversarial.render import total_variation
from engine.adversarial.target import resolve_class
from engine.core.errors import ConfigError, choice_error
from engine.core.jobs import JobStopped
from engine.models.predictions import top_predictions

# Lucid's colour correlation (the square root of ImageNet's RGB covariance, from its SVD), normalised so its
# largest column has unit norm: optimising in this basis treats luminance and colour changes evenly.
_COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_CORRELATION = _COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))


# ------------------------------------------------------------------------------------ parameterisations


def rfft2d_freqs(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Spatial frequency magnitudes of a real 2-D FFT of an h x w image, float32 on `device` (MPS has no
    float64, so no numpy float64 on the way)."""
    fy = torch.fft.fftfreq(h, device=device, dtype=torch.float32)[:, None]
    fx = torch.fft.fftfreq(w, device=device, dtype=torch.float32)[: w // 2 + 2 if w % 2 == 1 else w // 2 + 1]
    return (fx * fx + fy * fy).sqrt()


class FourierImage(nn.Module):
    """Lucid's decorrelated image: a spectrum scaled by 1/f (so every frequency learns at a similar pace,
    instead of high frequencies winning as they do in pixel space), colour-decorrelated, sigmoid to [0, 1].

    Built on `device`; the random spectrum is drawn on the CPU from `generator` (a CPU generator) and moved
    there, so a seed gives the same dream on every device.
    """

    scale: torch.Tensor  # buffers
    color: torch.Tensor

    def __init__(self, size: int, generator: torch.Generator, sd: float = 0.01, decay_power: float = 1.0,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.size = size
        freqs = rfft2d_freqs(size, size, device)
        spectrum = torch.randn(1, 3, *freqs.shape, 2, generator=generator, device="cpu") * sd
        self.spectrum = nn.Parameter(spectrum.to(device))
        scale = freqs.clamp_min(1.0 / size).pow(decay_power).reciprocal()
        self.register_buffer("scale", scale[None, None, ..., None])
        self.register_buffer("color", torch.tensor(COLOR_CORRELATION, dtype=torch.float32, device=device))

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.scale * self.spectrum)
        image = torch.fft.irfftn(spectrum, s=(self.size, self.size), norm="ortho") / 4.0  # Lucid's "magic" 4
        image = torch.einsum("nchw,dc->ndhw", image, self.color)
        return torch.sigmoid(image)


class PixelImage(nn.Module):
    """The lesson's parameterisation: the pixels themselves, kept in [0, 1]."""

    def __init__(self, size: int, generator: torch.Generator, device: torch.device | str = "cpu"):
        super().__init__()
        # drawn on the CPU (the generator's device), then moved: the same seed gives the same start everywhere
        noise = torch.randn(1, 3, size, size, generator=generator, device="cpu")
        self.pixels = nn.Parameter((0.5 + 0.1 * noise).clamp(0, 1).to(device))

    def forward(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def constrain(self) -> None:
        self.pixels.clamp_(0, 1)


# ------------------------------------------------------------------------------------ transformations


def _randint(lo: int, hi: int, g: torch.Generator) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g, device="cpu"))  # host-side: a Python int


def jitter(x: torch.Tensor, d: int, g: torch.Generator) -> torch.Tensor:
    """Lucid's jitter: a random crop d pixels smaller on each axis."""
    if d <= 0:
        return x
    dx, dy = _randint(0, d, g), _randint(0, d, g)
    h, w = x.shape[-2:]
    return x[..., dy:dy + h - d, dx:dx + w - d]


SCALES = [1 + (i - 5) / 50.0 for i in range(11)]  # 0.9 … 1.1
ANGLES = list(range(-10, 11)) + 5 * [0]  # degrees; no rotation a little more often


def scale_rotate(x: torch.Tensor, scale: float, degrees: float) -> torch.Tensor:
    """Zoom and rotate about the centre in one resampling (bilinear; edges extend the border)."""
    if scale == 1 and degrees == 0:
        return x
    a = math.radians(degrees)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def robust_transform(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Lucid's standard transforms: pad 12 (grey), jitter 8, scale 0.9-1.1, rotate -10..10 degrees, jitter 4."""
    x = F.pad(x, (12, 12, 12, 12), mode="constant", value=0.5)
    x = jitter(x, 8, g)
    scale = SCALES[_randint(0, len(SCALES) - 1, g)]
    degrees = ANGLES[_randint(0, len(ANGLES) - 1, g)]
    x = scale_rotate(x, scale, degrees)
    return jitter(x, 4, g)


def roll_jitter(x: torch.Tensor, d: int, g: torch.Generator) -> torch.Tensor:
    """The lesson recipe's optional jitter: shift the image by up to d pixels, wrapping around."""
    if d <= 0:
        return x
    return torch.roll(x, shifts=(_randint(-d, d, g), _randint(-d, d, g)), dims=(-2, -1))


# ------------------------------------------------------------------------------------ the loop


@dataclass
class DreamResult:
    image: torch.Tensor  # 1x3xHxW in [0, 1]
    steps_done: int
    seconds: float
    probs: list[float]  # target probability seen at each step (on that step's transformed image)


def make_image(recipe: str, size: int, generator: torch.Generator, device: torch.device) -> nn.Module:
    if recipe == "maco":
        return PhaseImage(size, generator, COLOR_CORRELATION, device=device)
    if recipe == "robust":
        return FourierImage(size, generator, device=device)
    return PixelImage(size, generator, device=device)


def dream_loss(logits: torch.Tensor, x: torch.Tensor, target: int, recipe: str, tv_weight: float,
               l2_weight: float) -> torch.Tensor:
    """maco, robust: -logit, averaged over the views (+ TV, L2); lesson: 10 * cross-entropy + TV (+ L2).
    Weights act on [0, 1] pixels."""
    if recipe in ("maco", "robust"):
        loss = -logits[:, target].mean()
    else:
        labels = torch.full((logits.shape[0],), target, dtype=torch.long, device=logits.device)
        loss = LESSON_CE_WEIGHT * F.cross_entropy(logits, labels)
    if tv_weight:
        loss = loss + tv_weight * total_variation(x).mean()
    if l2_weight:
        loss = loss + l2_weight * (x - 0.5).pow(2).sum(dim=(1, 2, 3)).mean()
    return loss


def objective(logits: list[torch.Tensor], targets: list[int], x: torch.Tensor, recipe: str, tv_weight: float,
              l2_weight: float) -> torch.Tensor:
    """The ensemble's loss: each network's dream loss toward its own index of the class, summed (the image
    terms, TV and L2, counted once). One network is an ensemble of one."""
    loss = dream_loss(logits[0], x, targets[0], recipe, tv_weight, l2_weight)
    for out, t in zip(logits[1:], targets[1:], strict=True):
        loss = loss + dream_loss(out, x, t, recipe, 0.0, 0.0)
    return loss


def views(x: torch.Tensor, recipe: str, size: int, crops: int, jitter_px: int, g: torch.Generator,
          noise_g: torch.Generator | None) -> torch.Tensor:
    """What the networks see of image x this step: maco, `crops` random crops in one batch; robust, one
    randomly transformed copy; lesson, the image (rolled by up to `jitter_px`)."""
    if recipe == "maco":
        return batched_crops(x, crops, size, g, noise_generator=noise_g)
    if recipe == "robust":
        return robust_transform(x, g)
    return roll_jitter(x, jitter_px, g)


def dream(model: nn.Module, target: int, *, recipe: str = "maco", steps: int | None = None, size: int = 224,
          lr: float | None = None, tv_weight: float | None = None, l2_weight: float = 0.0, jitter_px: int = 0,
          crops: int = DEFAULT_CROPS, ensemble: Sequence[tuple[nn.Module, int]] = (), seed: int = 0,
          on_step: Callable[[int, float, float, nn.Module], None] | None = None,
          check: Callable[[], None] | None = None) -> DreamResult:
    """Optimise an image toward class `target` of `model` (a frozen Classifier taking [0, 1] images).

    `on_step(step, target_prob, loss, image_fn)` is called after every step (1-based); `check()` before
    each step (a job's stop and pause). Returns the image as it stands when the loop ends. `ensemble` adds
    networks (each with its index of the class) that the image must convince too; they see the same views.
    """
    if recipe not in RECIPES:
        raise choice_error("recipe", recipe, RECIPES)
    device = next(model.buffers()).device
    lr = DEFAULT_LR[recipe] if lr is None else lr
    steps = DEFAULT_DREAM_STEPS[recipe] if steps is None else steps
    if tv_weight is None:
        tv_weight = LESSON_TV_WEIGHT if recipe == "lesson" else 0.0
    g = torch.Generator().manual_seed(seed)
    # the crops' noise is drawn where the crops are (a batch of it per step is too much to copy over)
    noise_g = torch.Generator(device=device).manual_seed(seed) if recipe == "maco" else None
    networks = [(model, target), *ensemble]
    image = make_image(recipe, size, g, device)
    optimizer = torch.optim.Adam(image.parameters(), lr=lr)
    probs: list[float] = []
    start = time.perf_counter()
    done = 0
    try:
        done = _optimise(networks, image, optimizer, recipe, steps, size, tv_weight, l2_weight, jitter_px, crops,
                         (g, noise_g), probs, on_step, check)
    except JobStopped as stop:
        with torch.no_grad():
            stop.partial = DreamResult(image().detach(), len(probs), time.perf_counter() - start, probs)
        raise
    with torch.no_grad():
        final = image().detach()
    return DreamResult(final, done, time.perf_counter() - start, probs)


def _optimise(networks, image, optimizer, recipe, steps, size, tv_weight, l2_weight, jitter_px, crops, gens,
              probs, on_step, check) -> int:
    done = 0
    target = networks[0][1]
    for step in range(1, steps + 1):
        if check is not None:
            check()
        x = image()
        seen = views(x, recipe, size, crops, jitter_px, *gens)
        outs = [net(seen) for net, _ in networks]
        logits = outs[0]
        loss = objective(outs, [t for _, t in networks], x, recipe, tv_weight, l2_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if isinstance(image, PixelImage):
            image.constrain()
        prob = float(logits.detach().softmax(1)[:, target].mean())  # over the views seen
        probs.append(prob)
        done = step
        if on_step is not None:
            on_step(step, prob, float(loss.detach()), image)
    return done


# ------------------------------------------------------------------------------------ judging


@torch.no_grad()
def judge(model: nn.Module, x: torch.Tensor, classes: list[str], target: int | None, k: int = 5) -> dict:
    """How `model` sees image `x`: the target's probability and rank (1 = first), and the top k."""
    probs = model(x).float().softmax(1)[0].cpu()
    out: dict[str, Any] = {"top": top_predictions(probs, classes, k)}
    if target is not None:
        out["probability"] = round(float(probs[target]), 6)
        out["rank"] = int((probs > probs[target]).sum()) + 1
    return out


def target_in(classes: list[str], name: str) -> int | None:
    """The same class in another model's list, when it has one (a run's 'cat' is not an ImageNet class)."""

    try:
        return resolve_class(name, classes)
    except ConfigError:
        return None
