"""A backbone's own stages, in input-to-output order: what `--unfreeze N` counts and the log names.

A family that knows its backbone's split says so (engine.models.family.Family.stages): EfficientNet-Lite (the
stem, its seven block stages, the 1x1 head convolution); timm backbones (the groups of timm's own
`group_matcher`: coarse for CNNs, ResNet's stem and layer1-4, ConvNeXt's stem and stages; fine for
transformers, the stem and each block, each stage with timm's layer-wise lr decay (`lr_scale`) and no weight
decay on the tokens timm names (`no_weight_decay()`)). Any other backbone is split by its structure here:
ResNet: the stem, layer1-4. VGG: the convolution blocks between max-pools, then the fc6/fc7 layers.
MobileNetV2/V3, EfficientNet-B, ConvNeXt (and any model with a `features` Sequential): `features[i]`,
then the classifier's remaining layers when they have weights. Anything else (ViT, RegNet, MaxViT, MNASNet,
GoogLeNet, Inception, ShuffleNet, …): its top-level children, where a child holding most of the parameters
(ViT's encoder, RegNet's trunk) is split into its own children until there are a few stages to count.
Every parameter belongs to exactly one stage (tests check it for every listed backbone).
"""

from __future__ import annotations

from torch import nn

from engine.models.family import Stage
from engine.models.registry import FAMILIES


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _resnet_stages(backbone) -> list[Stage]:
    stem = [m for name, m in backbone.named_children() if not name.startswith("layer") and _has_params(m)]
    return [Stage("stem", stem)] + [Stage(f"layer{i}", [getattr(backbone, f"layer{i}")]) for i in range(1, 5)]


def _vgg_stages(backbone) -> list[Stage]:
    stages, current = [], []
    for m in backbone.features:
        current.append(m)
        if isinstance(m, nn.MaxPool2d):
            stages.append(Stage(f"block{len(stages) + 1}", current))
            current = []
    if current:
        stages.append(Stage(f"block{len(stages) + 1}", current))
    return stages


def _features_stages(backbone) -> list[Stage]:
    return [Stage(f"features[{i}]", [m]) for i, m in enumerate(backbone.features)]


def _children_stages(backbone: nn.Module, at_least: int = 4) -> list[Stage]:
    """Top-level children with parameters; a child with more than half of all parameters is replaced by its
    own children (named parent.child) while there are fewer than `at_least` stages, so `--unfreeze 2` means
    the last two blocks of a ViT, not "the whole encoder". Parameters registered directly on an expanded
    module (ViT's position embedding) are picked up as loose parameters by the caller."""
    def size(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    named = [(n, m) for n, m in backbone.named_children() if _has_params(m)]
    total = size(backbone)
    while len(named) < at_least:
        big = next(((i, n, m) for i, (n, m) in enumerate(named)
                    if size(m) > total / 2 and any(_has_params(c) for c in m.children())), None)
        if big is None:
            break
        i, name, module = big
        named[i:i + 1] = [(f"{name}.{n}", c) for n, c in module.named_children() if _has_params(c)]
    return [Stage(n, [m]) for n, m in named]


def _structural_stages(backbone: nn.Module) -> list[Stage]:
    if all(hasattr(backbone, f"layer{i}") for i in range(1, 5)):
        return _resnet_stages(backbone)
    if isinstance(getattr(backbone, "features", None), nn.Sequential):
        stages = _vgg_stages(backbone) if type(backbone).__name__ == "VGG" else _features_stages(backbone)
        # what follows `features` (VGG's fc6/fc7, MobileNetV3's 960->1280 layer, ConvNeXt's norm)
        rest = [m for name, m in backbone.named_children() if name != "features" and _has_params(m)]
        if rest:
            stages.append(Stage("classifier" if type(backbone).__name__ != "VGG" else "fc6-fc7", rest))
        return stages
    return _children_stages(backbone)


def backbone_stages(backbone: nn.Module) -> list[Stage]:
    """The backbone's stages with parameters, first to last."""
    own = (family.stages(backbone) for family in FAMILIES.values())
    found = next((s for s in own if s), None) or _structural_stages(backbone)
    stages = [s for s in found if s.param_count]
    covered = {id(p) for s in stages for p in s.parameters()}
    loose = [p for p in backbone.parameters() if id(p) not in covered]
    if loose:  # parameters registered directly on the backbone: train them with the first stage
        holder = nn.ParameterList(loose)
        stages.insert(0, Stage("other parameters", [holder]))
    return stages


def last_stages(stages: list[Stage], n: int) -> list[Stage]:
    return stages[max(0, len(stages) - n):]


def describe(stages: list[Stage]) -> str:
    return ", ".join(f"{s.name} ({s.param_count / 1e6:.2f}M)" for s in stages)
