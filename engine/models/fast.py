"""Fast inference copies of a model: eval mode, BatchNorm folded into the convolutions, channels_last.

`inference_copy` works on a deep copy (the caller's model is never changed), on the model's own device and
dtype, and checks the folded copy's output against the original's on a probe made on that device; when they
differ it falls back to the unfolded copy, so an unusual architecture is never silently broken.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, overload

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from engine.models.ensemble import Ensemble

if TYPE_CHECKING:
    from engine.models.classifier import Classifier


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d (in the same parent) into it. Eval mode only.
    Models without BatchNorm (ViTs, ConvNeXt: LayerNorm) fold nothing and are used as they are.

    Adjacency of registration is a heuristic; `inference_copy` verifies the folded model's output against
    the original and falls back when they differ, so an unusual architecture can never be silently broken.
    """
    folded = 0
    for parent in model.modules():
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                    and conv.out_channels == bn.num_features and bn.track_running_stats):
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = _after_norm(bn)
                folded += 1
    return folded


def _after_norm(bn: nn.Module) -> nn.Module:
    """What remains of a folded BatchNorm: nothing, or for timm's BatchNormAct2d (a BatchNorm2d that also
    applies its dropout and activation) those two."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if isinstance(m, nn.Module)]
    return nn.Sequential(*rest) if rest else nn.Identity()


@overload
def inference_copy(model: Classifier, device: torch.device, size: int) -> Classifier: ...
@overload
def inference_copy(model: Ensemble, device: torch.device, size: int) -> Ensemble: ...
@overload
def inference_copy(model: Classifier | Ensemble, device: torch.device, size: int) -> Classifier | Ensemble: ...
def inference_copy(model: Classifier | Ensemble, device: torch.device, size: int) -> Classifier | Ensemble:
    """A frozen copy for inference: BN folded (when verified equal), channels_last on CPU and CUDA. An auto
    run's Ensemble: each of its backbones so, at the side it sees.

    The caller's model is left exactly as it was (mode, device, parameters): it may be shared, e.g. the
    attack targets' cache. The folded copy is checked where the model lives, with a probe of the model's own
    device and dtype, so a model already on a GPU is never fed a CPU tensor.
    """
    if isinstance(model, Ensemble):
        side = model.crop_size(size)
        return model.mapped(lambda c: _classifier_copy(c, device, side)).eval()
    return _classifier_copy(model, device, size)


def _classifier_copy(model: Classifier, device: torch.device, size: int) -> Classifier:
    # One deep copy, not two: the folded copy is checked against the caller's model itself, run in eval mode
    # for the check and put back as it was (a second copy doubled the memory of a large backbone and was a
    # third of a probe's set-up time). Only when the check fails is a second, unfolded copy made.
    fast = copy.deepcopy(model).eval()
    if fold_batchnorm(fast.backbone):
        # no_grad, not inference_mode: a module that caches a tensor in its forward (a lazily built rotary
        # table) would keep an inference tensor, which a later training step could not save for backward
        with torch.no_grad(), _evaluating(model):
            probe = _probe_images(model, size)
            want = model.features(probe)
            got = fast.features(probe)
        if not _same_outputs(want, got):
            fast = copy.deepcopy(model).eval()
    fast = fast.to(device)
    if device.type in ("cpu", "cuda"):
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """The model in eval mode for the block, then each module's own mode again (a training model may mix
    them: frozen stages in eval). A model already all in eval is not touched, so one shared between threads
    (the attack targets' cache) is never seen in another mode."""
    training = [(m, m.training) for m in model.modules()]
    if not any(t for _, t in training):
        yield
        return
    model.eval()
    try:
        yield
    finally:
        for m, t in training:
            m.training = t


def _probe_images(model: nn.Module, size: int) -> torch.Tensor:
    """Two images of values spread over [0, 1) (golden-ratio steps), on the model's device and in its dtype.

    Deterministic and drawn from no random generator: the check must not shift the caller's RNG stream
    (a seeded run extracts, then trains its head).
    """
    param = next(model.parameters())
    n = 2 * 3 * size * size
    values = torch.arange(n, device=param.device, dtype=torch.float32).mul_(0.6180339887).frac_()
    return values.view(2, 3, size, size).to(param.dtype)


def _same_outputs(want: torch.Tensor, got: torch.Tensor) -> bool:
    if want.device.type == "meta":  # a meta model (device tests) has shapes but no values to compare
        return want.shape == got.shape
    want, got = want.float(), got.float()
    return bool(torch.allclose(want, got, rtol=1e-3, atol=1e-3 * float(want.abs().max()) + 1e-5))

