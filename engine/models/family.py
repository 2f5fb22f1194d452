"""The interface every backbone family implements: EfficientNet-Lite, torchvision, timm, or a plug-in's own.

A family answers, for the backbone names it owns: the names it lists and searches, each name's spec, the
architecture (built with random weights), its pretrained weights (status, identity, loading) and a state dict
from a file, the width of its pooled features and its ImageNet head, and its stages. engine.models.registry
holds the families in a table and asks the one that owns a name; nothing outside a family branches on which
family a backbone belongs to. docs/backbones.md ("Adding a family") walks through writing one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from engine.models.classifier import feature_width, split_head
from engine.models.spec import BackboneSpec, WeightsStatus
from engine.models.weights import file_identity, load_into, read_state_dict

if TYPE_CHECKING:
    from engine.core.jobs import JobContext


@dataclass
class Stage:
    """A group of a backbone's modules that `--unfreeze N` counts and the log names, input to output."""

    name: str
    modules: list[nn.Module]
    lr_scale: float | None = None  # the stage's rate relative to the head's (timm's layer decay); None: stage_lr
    no_decay: frozenset[int] = field(default_factory=frozenset)  # ids of parameters that take no weight decay

    def parameters(self):
        for m in self.modules:
            yield from m.parameters()

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Family(ABC):
    """One kind of backbone. Subclasses give the abstract methods; the others have defaults that suit a model
    whose ImageNet classifier is its last nn.Linear and whose weights are a state dict."""

    name: str  # recorded in every spec it makes (BackboneSpec.family) and in `tlbench backbones --json`

    # ------------------------------------------------------------------------------------ names

    @abstractmethod
    def owns(self, name: str) -> bool:
        """Whether `name` is one of this family's backbones (cheap: asked of every family for every name)."""

    @abstractmethod
    def names(self, all_models: bool = False) -> list[str]:
        """The names `tlbench backbones` lists (`all_models`: with --all), in the order shown."""

    def search_names(self) -> Iterable[str]:
        """Every name `tlbench backbones --search` looks through (timm: its ~1,800 pretrained models)."""
        return self.names(all_models=True)

    def more_names(self) -> str | None:
        """A clause for the unknown-name error, when the family takes names it does not list."""
        return None

    # ------------------------------------------------------------------------------------ spec and model

    @abstractmethod
    def spec(self, name: str) -> BackboneSpec:
        """The backbone's spec (input size, preprocessing, accuracy …), with `family=self.name`."""

    @abstractmethod
    def build(self, spec: BackboneSpec) -> nn.Module:
        """The ImageNet model with random weights, the same architecture its pretrained weights load into.
        Its parameters are made with torch's allocators (the registry builds it on the meta device to measure
        it, and under a seeded generator for `--weights random`)."""

    def feature_width(self, model: nn.Module) -> int:
        """The width of the pooled features the model's ImageNet classifier reads."""
        return feature_width(model)

    def split_head(self, model: nn.Module, spec: BackboneSpec) -> tuple[nn.Module, nn.Module | None]:
        """(the feature extractor, the ImageNet classifier as a module on its features, or None when the
        classifier is not one); `model` may be changed in place."""
        return split_head(model)

    def check_imagenet_head(self, spec: BackboneSpec) -> None:
        """Raise a ConfigError, before anything loads, when the pretrained model has no ImageNet-1k head
        (attacks and dreams on a backbone need its 1,000 class names). By default every model has one."""
        return None

    def stages(self, backbone: nn.Module) -> list[Stage] | None:
        """The backbone's own stages when it is one of this family's modules and has a split of its own;
        None: engine.models.stages splits it by its structure (ResNet's layers, a `features` Sequential …)."""
        return None

    # ------------------------------------------------------------------------------------ weights

    @abstractmethod
    def weights_status(self, spec: BackboneSpec) -> WeightsStatus:
        """Whether its pretrained weights are here (shipped, cached), can be fetched (download) or not (missing)."""

    @abstractmethod
    def pretrained_identity(self, spec: BackboneSpec) -> str:
        """What identifies its pretrained weights, without loading them (configs, checkpoints, feature-cache
        keys). May raise the missing-weights error at once, before a run starts."""

    @abstractmethod
    def load_pretrained(self, spec: BackboneSpec, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
        """(the ImageNet model with its pretrained weights, their identity); downloads once where allowed."""

    def load_file(self, spec: BackboneSpec, path: Path, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
        """(the model with the state dict in `path`, loaded with weights_only=True, the file's identity)."""
        identity = file_identity(path)
        model = self.build(spec)
        load_into(model, read_state_dict(path), str(path), spec.name)
        return model, identity
