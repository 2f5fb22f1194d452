"""A backbone family written for the tests, the way docs/backbones.md ("Adding a family") describes: a tiny CNN
(`tiny_cnn`, `tiny_cnn_wide`) that builds and runs in milliseconds. Its "pretrained" weights are a state dict it
keeps in a folder of its own (made from a seed by `TinyFamily.ship`), so the pretrained path, `--weights random`
and `--weights FILE` all run. It plugs in with engine.models.registry.register_family: nothing in engine/models
knows it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.models.family import Family, Stage
from engine.models.spec import BackboneSpec, WeightsStatus
from engine.models.weights import load_into, read_state_dict

WIDTHS = {"tiny_cnn": 8, "tiny_cnn_wide": 16}  # name -> channels of the first convolution


def conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TinyCNN(nn.Module):
    """Three strided convolutions, global pooling, a 1,000-class ImageNet-like head (the last nn.Linear)."""

    def __init__(self, width: int):
        super().__init__()
        self.stem = conv(3, width)
        self.block1 = conv(width, 2 * width)
        self.block2 = conv(2 * width, 4 * width)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * width, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.block2(self.block1(self.stem(x)))))


class TinyFamily(Family):
    name = "tiny"

    def __init__(self, weights_dir: Path):
        self.weights_dir = weights_dir  # where its "pretrained" weights are shipped

    def owns(self, name: str) -> bool:
        return name in WIDTHS

    def names(self, all_models: bool = False) -> list[str]:
        return list(WIDTHS)

    def spec(self, name: str) -> BackboneSpec:
        return BackboneSpec(name, self.name, input_size=32, resize_size=36, min_input=16, params=None)

    def build(self, spec: BackboneSpec) -> nn.Module:
        return TinyCNN(WIDTHS[spec.name])

    def stages(self, backbone: nn.Module) -> list[Stage] | None:
        if not isinstance(backbone, TinyCNN):
            return None
        # named by depth, not by attribute: a test tells this split from the one engine.models.stages would guess
        return [Stage("conv1", [backbone.stem]), Stage("conv2", [backbone.block1]), Stage("conv3", [backbone.block2])]

    def weights_file(self, spec: BackboneSpec) -> Path:
        return self.weights_dir / f"{spec.name}.pt"

    def weights_status(self, spec: BackboneSpec) -> WeightsStatus:
        path = self.weights_file(spec)
        if path.exists():
            return WeightsStatus("shipped", str(path), "shipped with the tiny family", path.stat().st_size)
        return WeightsStatus("missing", None, f"TinyFamily.ship({spec.name!r}) makes them")

    def pretrained_identity(self, spec: BackboneSpec) -> str:
        return f"tiny:{self.weights_file(spec).name}"

    def load_pretrained(self, spec: BackboneSpec, ctx=None) -> tuple[nn.Module, str]:
        model = self.build(spec)
        load_into(model, read_state_dict(self.weights_file(spec)), str(self.weights_file(spec)), spec.name)
        return model, self.pretrained_identity(spec)

    def ship(self, name: str, seed: int = 0) -> Path:
        """Make the "pretrained" weights of `name`: the architecture drawn from `seed`, saved as a state dict."""
        torch.manual_seed(seed)
        path = self.weights_file(self.spec(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.build(self.spec(name)).state_dict(), path)
        return path
