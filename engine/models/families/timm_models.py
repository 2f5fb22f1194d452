"""timm backbones: `timm/<name>` as on the Hugging Face hub (`timm/resnet50.a1_in1k`,
`timm/vit_small_patch14_dinov2.lvd142m`, …), any of timm's pretrained models.

The features are `forward_features` then `forward_head(pre_logits=True)`, their width `head_hidden_size` (else
`num_features`), the ImageNet head `get_classifier()` and its removal `reset_classifier(0)`; the spec, the
architecture and the stages come from timm itself (engine.models.families.timm_build), the weights from the
Hugging Face cache (engine.models.families.timm_hub).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from engine.core.errors import ConfigError, WeightsError
from engine.models.family import Family, Stage
from engine.models.spec import BackboneSpec, WeightsStatus
from engine.models.weights import file_identity, read_state_dict

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

PREFIX = "timm/"


def timm_build():
    # timm takes ~0.6 s to import after torchvision (measured on this project's 2-core machine): only a
    # timm/ backbone pays for it, not every job that imports the registry
    from engine.models.families import timm_build

    return timm_build


def timm_hub():
    # huggingface_hub and safetensors come with timm: imported with it, for the same reason
    from engine.models.families import timm_hub

    return timm_hub


def model_name(name: str) -> str:
    """`timm/resnet50.a1_in1k` -> `resnet50.a1_in1k` (timm's name: architecture.pretrained_tag)."""
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


@functools.cache
def pretrained_names() -> tuple[str, ...]:
    """Every pretrained model timm knows, as `timm/<name>`."""
    return tuple(PREFIX + n for n in timm_build().pretrained_names())


class TimmFeatures(nn.Module):
    """A timm model without its classifier, returning the pooled pre-logits features the classifier read:
    `forward_head(forward_features(x), pre_logits=True)` (pooling, fc_norm, MobileNetV3's head conv included)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model: Any = model  # a timm model: forward_head, group_matcher … (not on nn.Module's type)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def feature_width(model: Any) -> int:
    """The width of `forward_head(pre_logits=True)`: timm's `head_hidden_size` (MobileNetV3: 1280 after its head
    conv), else `num_features`."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def imagenet_head_error(name: str, num_classes: int) -> ConfigError:
    what = "no classification head" if not num_classes else f"a {num_classes}-class head"
    return ConfigError(
        f"{name} has {what} (timm's pretrained config), not ImageNet-1k's 1,000 classes, so it has no class "
        "names to attack or dream towards here. Train a run on it (tlbench train --backbone "
        f"{name}) and attack that run, or pick a timm model with an in1k head (e.g. timm/resnet50.a1_in1k)."
    )


class TimmFamily(Family):
    name = "timm"

    def owns(self, name: str) -> bool:
        return name.startswith(PREFIX)

    def names(self, all_models: bool = False) -> list[str]:
        return []  # ~1,800: searched (`tlbench backbones --search`), never listed

    def search_names(self) -> Iterable[str]:
        return pretrained_names()

    def more_names(self) -> str:
        return "any timm pretrained model as timm/<name> (`tlbench backbones --search TEXT`)"

    def spec(self, name: str) -> BackboneSpec:
        build = timm_build()
        cfg = build.pretrained_cfg(model_name(name))
        if cfg is None:
            arch = model_name(name).split(".")[0]
            tags = [n for n in pretrained_names() if n.startswith(f"{PREFIX}{arch}.")]  # the architecture's own first
            close = (tags + [n for n in pretrained_names() if arch in n and n not in tags])[:6]
            hint = f" Close names: {', '.join(close)}." if close else ""
            raise ConfigError(
                f"Unknown timm backbone {name!r}: timm {build.version()} has no pretrained model of that name.{hint} "
                "Use the name as on the Hugging Face hub (timm/<architecture>.<tag>); "
                "`tlbench backbones --search TEXT` lists them."
            )
        return BackboneSpec(name, self.name, featured=False, **build.spec_fields(model_name(name), cfg))

    def build(self, spec: BackboneSpec) -> nn.Module:
        return timm_build().create_model(spec.extra["timm_name"], spec.extra["dynamic_img_size"])

    def feature_width(self, model: nn.Module) -> int:
        return feature_width(model)

    def split_head(self, model: Any, spec: BackboneSpec) -> tuple[nn.Module, nn.Module | None]:
        """timm's own `get_classifier()`, then `reset_classifier(0)`, which leaves forward_head's pre-logits
        layers: (the features, the ImageNet classifier as a Linear on them, or None)."""
        head = model.get_classifier()
        model.reset_classifier(0)
        if not isinstance(head, nn.Linear) or head.in_features != feature_width(model):
            head = None  # no head (DINOv2), a distilled pair, a conv classifier: not a Linear on the features
        return TimmFeatures(model), head

    def check_imagenet_head(self, spec: BackboneSpec) -> None:
        if spec.extra["num_classes"] != 1000:
            raise imagenet_head_error(spec.name, spec.extra["num_classes"])

    def stages(self, backbone: nn.Module) -> list[Stage] | None:
        """The groups of timm's own `group_matcher` (engine.models.families.timm_build.timm_stages); a model
        without one is split by its children, as torchvision's are."""
        if isinstance(backbone, TimmFeatures) and hasattr(backbone.model, "group_matcher"):
            return timm_build().timm_stages(backbone.model)
        return None

    def weights_status(self, spec: BackboneSpec) -> WeightsStatus:
        return WeightsStatus(*timm_hub().status(spec))

    def pretrained_identity(self, spec: BackboneSpec) -> str:
        # a run asks this before it creates its directory, extracts or trains: weights that are neither
        # cached nor downloadable (offline, no network) fail it here, at once
        timm_hub().check_available(spec)
        # timm's hub weights are immutable per tag (new weights get a new tag), so the repository names them;
        # the same before and after the download on first use
        return f"hf:{spec.extra['hf_hub_id']}"

    def load_pretrained(self, spec: BackboneSpec, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
        """From the Hugging Face cache, downloaded once when allowed."""
        identity = self.pretrained_identity(spec)
        path = timm_hub().ensure(spec, ctx)
        return self._create(spec, path, timm_hub().read_state_dict(path)), identity

    def load_file(self, spec: BackboneSpec, path: Path, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
        identity = file_identity(path)
        state = timm_hub().read_state_dict(path) if path.name.endswith(".safetensors") else read_state_dict(path)
        return self._create(spec, path, state), identity

    def _create(self, spec: BackboneSpec, path: Path, state: dict) -> nn.Module:
        """timm's create_model loads the state dict itself, through the architecture's checkpoint filter
        (position embeddings resampled, …)."""
        try:
            return timm_build().create_model(spec.extra["timm_name"], spec.extra["dynamic_img_size"], state)
        except (RuntimeError, KeyError, ValueError) as err:  # timm's strict load_state_dict, or its filter
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise WeightsError(f"The weights in {path} do not fit {spec.name} ({first[:300]}). Use a state dict "
                               "saved from the same timm model, or delete the cached file to download it "
                               "again.") from None
