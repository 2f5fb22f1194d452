"""What attacks, robustness sweeps and dreams share: the model under autocast (AutocastForward), its fast
inference copy on the job's device, probabilities, 8-bit quantisation, and where outputs are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.core.runs import runs_root
from engine.models.fast import inference_copy
from engine.models.loading import run_precision
from engine.runtime.precision import autocast, autocast_dtype, recorded_dtype

if TYPE_CHECKING:
    from engine.adversarial.target import TargetModel


# ------------------------------------------------------------------------------------ shared job parts


class AutocastForward(nn.Module):
    """A model whose forward runs under autocast (engine.runtime.precision) and returns fp32 logits.

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


def job_dtype(device: torch.device, precision: str, tm: TargetModel) -> torch.dtype | None:
    """The autocast dtype of an attack, sweep or dream: `auto` on a run replays the precision the run recorded
    (its numbers are the run's on any machine); on a backbone, or when asked, engine.runtime.precision's."""
    if precision == "auto" and tm.record is not None:
        return recorded_dtype(run_precision(tm.record))
    return autocast_dtype(device, precision)


def fast_copy(tm: TargetModel, device: torch.device, size: int, dtype: torch.dtype | None = None) -> nn.Module:
    """A copy of the model with BatchNorm folded into the convolutions and channels_last (about 2x faster
    forward and backward on a CPU), under autocast to `dtype` when one is given (engine.runtime.precision).
    engine.features.cache checks the folded copy against the original and falls back; the original (possibly
    shared, see engine.adversarial.target) is not touched."""

    model = inference_copy(tm.model, device, size)
    model.run_dtype = None  # the copy runs under this job's autocast (below), not the run's own
    return AutocastForward(model, device, dtype) if dtype is not None else model


@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).float().softmax(1).cpu()


def quantized(x: torch.Tensor) -> torch.Tensor:
    """The image as an 8-bit PNG stores it."""
    return x.mul(255).round().div(255)


def output_root(tm: TargetModel, kind: str) -> Path:
    """Where outputs of `kind` (attacks, dreams) go when the user names no place: under the run attacked, or
    under the runs root for a backbone's ImageNet head."""
    return tm.run_dir / kind if tm.run_dir is not None else runs_root() / kind
