"""The classifier tlbench trains: normalisation inside the model, a backbone, a head.

Images enter in [0, 1]; normalisation is the model's first layer. That keeps one convention everywhere —
attacks measure eps in pixel units, exports embed their preprocessing, predictions need no side recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from engine.runtime.precision import autocast


class Normalize(nn.Module):
    mean: torch.Tensor  # buffers, [1, C, 1, 1]
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        # where nn layers put their parameters: the default device (meta inside `with torch.device("meta")`);
        # the model is moved to its device as a whole
        device = torch.get_default_device()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """normalize -> backbone (pooled features) -> dropout -> head (logits).

    The dropout (`--dropout P`, 0 by default) acts in training only (nn.Dropout is the identity in eval mode);
    it holds no parameters, so checkpoints are the same with or without it."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mean: Sequence[float], std: Sequence[float],
                 dropout: float = 0.0):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = head

    # The precision the model's run computed in, replayed by every job on the run (engine.models.loading sets
    # it from config.json): autocast to `run_dtype` around the backbone alone ("features": the probe's and auto's
    # heads were fitted in fp32 on cached features) or around the whole forward ("model": fine-tuning). None:
    # fp32, or the caller's own autocast (training, export). A plain attribute: checkpoints do not change.
    run_dtype: torch.dtype | None = None
    run_scope: str = "model"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.run_dtype is None:
            return self.head(self.dropout(self.features(x)))
        with autocast(x.device, self.run_dtype):
            f = self.features(x)
            if self.run_scope == "model":
                return self.head(self.dropout(f)).float()
        return self.head(self.dropout(f.float()))


def last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The classification layer of an ImageNet model: (its parent, its attribute name, the layer).

    Every torchvision classifier except SqueezeNet (its family handles that one), and EfficientNet-Lite, ends
    in an nn.Linear; what precedes it is the feature extractor (pooling and flattening included; ViT: the class
    token). This is timm's `reset_classifier` idea.
    """
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = name
    if found is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classification layer")
    parent_name, _, attr = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def feature_width(model: nn.Module) -> int:
    """The width of the pooled features the model's last nn.Linear (its ImageNet classifier) reads."""
    return last_linear(model)[2].in_features


def split_head(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """Replace the model's last nn.Linear (its ImageNet classifier) with Identity, in place; return (feature
    extractor, that Linear). A family whose classifier is something else says so (engine.models.family)."""
    parent, attr, linear = last_linear(model)
    # setattr replaces a Sequential's item by its name too ("1", or ViT's `heads.head`)
    setattr(parent, attr, nn.Identity())
    return model, linear
