"""What the model looks at: Grad-CAM, integrated gradients and occlusion heatmaps, through Captum.

Captum (PyTorch's own attribution library) computes the attributions; this module only chooses the layer,
turns attributions into a heatmap in [0, 1], and maps it back onto the original image. The model sees a
resized, center-cropped copy (engine.data.loaders.resize_center_crop): the heatmap is placed into that crop's
window of the resized image (zero where the model saw nothing) and resized to the original resolution.

Grad-CAM's layer is the backbone's last stage with a spatial output (engine.models.stages): a CNN's last
feature map (NCHW, or NHWC as Swin's stages give it). Token outputs [B, T, D] (ViTs) are reshaped to a grid
after their prefix tokens (class, distillation, registers); there the layer is the input of the last block,
as pytorch-grad-cam advises for ViTs: the last block's patch outputs never reach a class-token head, so
their gradients are zero.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion
from PIL import Image
from torch import nn

from engine.core.choices import EXPLAIN_METHODS as METHODS
from engine.core.errors import ConfigError
from engine.core.files import atomic_write_bytes
from engine.core.records import Preprocessing
from engine.data.images import ImageProblem, load_rgb
from engine.data.loaders import _center_offset, eval_transform
from engine.evaluate.evaluation import with_tta
from engine.models.classifier import Classifier
from engine.models.ensemble import Ensemble
from engine.models.loading import RunModel
from engine.models.stages import backbone_stages

IG_STEPS = 32  # Riemann steps of the path integral; Captum's default is 50, 32 keeps the error small on CNNs


class _GridProbe(nn.Identity):
    """Where Captum's Grad-CAM hooks: the chosen layer's output as a [B, C, h, w] grid (see _probe_hook)."""


def _spatial_kind(out) -> str | None:
    """'nchw', 'nhwc' or 'tokens' for a layer output Grad-CAM can use; None for anything else (pooled
    features, a classifier's Linear, tuples)."""
    if not isinstance(out, torch.Tensor):
        return None
    if out.dim() == 4 and out.shape[2] == out.shape[3] and out.shape[2] > 1:
        return "nchw"  # the input is a square crop, so its feature maps are square
    if out.dim() == 4 and out.shape[1] == out.shape[2] and out.shape[1] > 1:
        return "nhwc"
    if out.dim() == 3 and out.shape[1] > 1 and _token_prefix(out.shape[1]) is not None:
        return "tokens"
    return None


def _token_prefix(tokens: int) -> int | None:
    """How many prefix tokens precede a square grid of patch tokens (0 to 8), or None if none fits."""
    for prefix in range(0, 9):
        side = math.isqrt(tokens - prefix)
        if side > 1 and side * side == tokens - prefix:
            return prefix
    return None


def gradcam_layer(model: Classifier, x: torch.Tensor, backbone: nn.Module | None = None) -> tuple[nn.Module, str, str]:
    """(module, its stage's name, kind): the layer Grad-CAM explains, in `backbone` (default the model's). One
    forward pass on `x` finds which stages give spatial outputs."""
    backbone = model.backbone if backbone is None else backbone
    stages = backbone_stages(backbone)
    kinds: dict[int, str | None] = {}
    hooks = []
    for i, stage in enumerate(stages):
        def record(_m, _inp, out, i=i):
            kinds[i] = _spatial_kind(out)
            if isinstance(_m, nn.modules.batchnorm._BatchNorm):
                # a BatchNorm output is pre-activation (EfficientNet-Lite's head conv applies its ReLU6 in
                # forward): Grad-CAM on it lights up single cells; the stage before it is post-activation
                kinds[i] = None
        hooks.append(stage.modules[-1].register_forward_hook(record))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    found = [i for i in range(len(stages)) if kinds.get(i)]
    if not found:
        raise ConfigError(f"{type(backbone).__name__} has no stage with a spatial output to explain with "
                          "Grad-CAM: use --method ig or --method occlusion.")
    last = found[-1]
    if kinds[last] == "tokens":
        # the final norm (or last block) reaches the head through the class token alone: take the output
        # of the stage before the last block, i.e. the last block's input
        blocks = [i for i in found if not all(isinstance(m, nn.LayerNorm) for m in stages[i].modules)]
        last = blocks[-2] if len(blocks) >= 2 else blocks[-1]
    return stages[last].modules[-1], stages[last].name, str(kinds[last])


def _probe_hook(probe: nn.Module, kind: str) -> Callable:
    """A forward hook that routes the layer's output through `probe` as an NCHW grid and back, unchanged."""
    def hook(_m, _inp, out):
        if kind == "nchw":
            return probe(out)
        if kind == "nhwc":
            return probe(out.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        prefix = _token_prefix(out.shape[1]) or 0
        head, patches = out[:, :prefix], out[:, prefix:]
        b, n, d = patches.shape
        side = math.isqrt(n)
        grid = probe(patches.transpose(1, 2).reshape(b, d, side, side))
        return torch.cat([head, grid.reshape(b, d, n).transpose(1, 2)], 1)
    return hook


def _normalise(heat: torch.Tensor) -> torch.Tensor:
    """Non-negative evidence scaled to [0, 1] by its maximum (all zeros when there is none)."""
    heat = heat.float().clamp_min(0)
    top = heat.max()
    return heat / top if top > 0 else heat


def gradcam(forward: Callable[[torch.Tensor], torch.Tensor], where: list[Classifier], x: torch.Tensor,
            target: int) -> torch.Tensor:
    """Grad-CAM [S, S] of `forward`'s class `target` at the last spatial stage of each Classifier's backbone in
    `where` (several: the backbones a concatenated head reads), each map scaled to [0, 1], then averaged."""
    heat = torch.zeros(x.shape[-2:], device=x.device)
    for model in where:
        layer, _, kind = gradcam_layer(model, x.detach())
        probe = _GridProbe()
        handle = layer.register_forward_hook(_probe_hook(probe, kind))
        try:
            attr = LayerGradCam(forward, probe).attribute(x, target=target, relu_attributions=True)
            assert isinstance(attr, torch.Tensor)  # a tuple only for a layer with several outputs
        finally:
            handle.remove()
        heat = heat + _normalise(LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), "bilinear")[0, 0])
    return heat / len(where)


def ensemble_gradcam(model: Ensemble, x: torch.Tensor, target: int) -> torch.Tensor:
    """An approximation, documented as such: the ensemble's evidence for `target` as its members' Grad-CAM maps
    averaged with the members' weights; each member's map the mean over its test-time views (a crop's map put
    back where the crop lies, a mirrored view's mirrored back) and over the backbones its head reads. Grad-CAM
    of the averaged probabilities itself has no single layer to look at."""
    heat = torch.zeros(x.shape[-2:], device=x.device)
    side = x.shape[-1]
    for i, weight in enumerate(model.weights.tolist()):
        mine, count = torch.zeros_like(heat), torch.zeros_like(heat)
        where = [c for e, c in enumerate(model.classifiers()) if e in model.parts[i]]
        for v in model.views[i]:
            top, left, size, mirrored = v
            size = size or side
            view = model.view(x, v)
            h = gradcam(lambda inp, i=i: model.member_view_logits(i, inp), where, view, target)
            mine[top:top + size, left:left + size] += h.flip(-1) if mirrored else h
            count[top:top + size, left:left + size] += 1
        heat = heat + weight * _normalise(mine / count.clamp_min(1))
    return heat


def attribute(model: RunModel, x: torch.Tensor, target: int, method: str = "gradcam") -> torch.Tensor:
    """Heatmap [S, S] in [0, 1] (on x's device) of the evidence for class `target` in one image x [1, 3, S, S]
    in [0, 1], at the model's input resolution. `model` stays as it is (hooks are removed)."""
    if method not in METHODS:
        raise ConfigError(f"Unknown explanation method {method!r}: use one of {', '.join(METHODS)}.")
    size = x.shape[-2:]
    x = x.detach().clone().requires_grad_(True)  # gradients flow to the image even when parameters are frozen
    if method == "gradcam":
        heat = ensemble_gradcam(model, x, target) if isinstance(model, Ensemble) else gradcam(model, [model], x, target)
    elif method == "ig":
        attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                    n_steps=IG_STEPS, internal_batch_size=16)
        heat = attr.detach()[0].abs().sum(0)
        # pixel-level attributions are speckled: average over a small window so the heatmap shows regions
        k = max(3, size[0] // 28) | 1
        heat = F.avg_pool2d(heat[None, None], k, stride=1, padding=k // 2, count_include_pad=False)[0, 0]
        heat = heat.clamp_max(torch.quantile(heat.flatten(), 0.99))  # a few hot pixels would flatten the rest
    else:
        # an 11 x 11 grid of half-overlapping windows: 121 forward passes, coarse but enough to see where
        window, stride = max(4, size[0] // 6), max(2, size[0] // 12)
        attr = Occlusion(model).attribute(x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                          baselines=0.5, target=target, perturbations_per_eval=32)
        heat = attr.detach()[0].mean(0)  # the window spans the channels: each holds the same drop in score
    return _normalise(heat)


def crop_window(height: int, width: int, prep: Preprocessing) -> tuple[int, int, int, int]:
    """(resized height, resized width, top, left) of the model's crop, as resize_center_crop computes them."""
    short = min(height, width)
    new_h, new_w = prep.resize_size * height // short, prep.resize_size * width // short
    return new_h, new_w, _center_offset(new_h - prep.crop_size), _center_offset(new_w - prep.crop_size)


def to_original(heat: torch.Tensor, height: int, width: int, prep: Preprocessing) -> np.ndarray:
    """A heatmap over the model's crop -> float32 [height, width] in [0, 1] over the original image: the crop's
    place in the resized image, zero outside it (the model never saw those pixels), resized back."""
    new_h, new_w, top, left = crop_window(height, width, prep)
    canvas = torch.zeros(new_h, new_w, dtype=torch.float32, device="cpu")
    s = prep.crop_size
    canvas[top:top + s, left:left + s] = heat.detach().float().cpu()
    full = F.interpolate(canvas[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return _normalise(full).clamp(0, 1).numpy().astype(np.float32)  # resizing lowers a peak: rescale it


def _colour(heat: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> RGB uint8, black-red-yellow-white (an 'inferno'-like ramp, no matplotlib needed)."""
    anchors = np.array([0, 0.35, 0.7, 1.0], dtype=np.float32)
    ramp = np.array([[0, 0, 0], [200, 30, 30], [255, 200, 0], [255, 255, 255]], dtype=np.float32)
    return np.stack([np.interp(heat, anchors, ramp[:, c]) for c in range(3)], -1).astype(np.uint8)


def overlay(img: Image.Image, heat: np.ndarray, alpha: float = 0.55) -> Image.Image:
    """The heatmap blended over the image: strong evidence opaque, none transparent."""
    base = np.asarray(img.convert("RGB"), dtype=np.float32)
    weight = (alpha * heat)[..., None]
    return Image.fromarray((base * (1 - weight) + _colour(heat) * weight).clip(0, 255).astype(np.uint8))


def _safe_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:60] or "image"


def explain_image(model: RunModel, classes: list[str], prep: Preprocessing, path: str | os.PathLike,
                  method: str = "gradcam", target: int | None = None,
                  tta: bool = False) -> tuple[np.ndarray, dict, Image.Image]:
    """(heatmap at the original resolution, {"class", "index", "prob"}, the decoded image) for one file.
    Without `target`, the predicted class. Raises ImageProblem for an unusable file."""
    img = load_rgb(path)
    heat, info = explain_pil(model, classes, prep, img, method, target, tta)
    return heat, info, img


def explain_pil(model: RunModel, classes: list[str], prep: Preprocessing, img: Image.Image,
                method: str = "gradcam", target: int | None = None, tta: bool = False) -> tuple[np.ndarray, dict]:
    """explain_image for an image already in memory (an adversarial example, a preview).

    `tta` (a run that averages each image with its mirror image, as eval and predict then do): the class and
    probability are the averaged prediction's, and the heatmap is the mean of the image's and its mirror
    image's (mirrored back), so the explanation is of the very prediction the run reports."""
    img = img.convert("RGB")
    device = next(model.parameters()).device
    x = eval_transform(img, prep).unsqueeze(0).to(device).float().div(255)
    with torch.no_grad():
        probs = with_tta(model, tta)(x).float().softmax(1)[0].cpu()
    index = int(probs.argmax()) if target is None else int(target)
    heat = attribute(model, x, index, method)
    if tta:
        heat = _normalise(heat + attribute(model, x.flip(-1), index, method).flip(-1))
    info = {"class": classes[index], "index": index, "prob": round(float(probs[index]), 6)}
    return to_original(heat, img.height, img.width, prep), info


def explain_paths(model: RunModel, classes: list[str], prep: Preprocessing, paths: list[str],
                  out_dir: str | os.PathLike, method: str = "gradcam", target: int | None = None,
                  log: Callable[[str], None] | None = None, tta: bool = False) -> list[dict]:
    """Per image {"path", "target", "heatmap", "overlay"} (files NN-name-heatmap.npy and NN-name-overlay.png in
    out_dir) or {"path", "error"}, in input order; one bad image never stops the others."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    for n, path in enumerate(paths):
        try:
            heat, info, img = explain_image(model, classes, prep, path, method, target, tta)
        except ImageProblem as err:
            results.append({"path": str(path), "error": str(err)})
            continue
        stem = f"{n:02d}-{_safe_name(str(path))}"
        heat_file, overlay_file = out / f"{stem}-heatmap.npy", out / f"{stem}-overlay.png"
        atomic_write_bytes(heat_file, _encoded(lambda f: np.save(f, heat)))  # noqa: B023 - called at once
        atomic_write_bytes(overlay_file, _encoded(lambda f: overlay(img, heat).save(f, format="PNG")))  # noqa: B023
        results.append({"path": str(path), "target": info, "heatmap": str(heat_file), "overlay": str(overlay_file)})
        if log is not None:
            log(f"{path}: {method} for {info['class']} ({info['prob']:.3f})")
    return results


def _encoded(save: Callable) -> bytes:
    buf = io.BytesIO()
    save(buf)
    return buf.getvalue()
