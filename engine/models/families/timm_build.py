"""timm, the library: what the timm family (engine.models.families.timm_models) asks of it, in timm's own names
(`resnet50.a1_in1k`, `vit_small_patch14_dinov2.lvd142m`: architecture.tag; the family adds and strips "timm/").

Everything is read from timm's own declarations rather than guessed:
- preprocessing from the pretrained config (`resolve_data_config`: input size, mean/std — CLIP's are not
  ImageNet's —, interpolation, crop_pct);
- the stages for partial/full from `group_matcher` (timm.models._manipulate.group_parameters), and for
  transformers the layer-wise lr decay of timm's fine-tuning recipes;
- the input size: a ViT is created with `dynamic_img_size=True` (and `dynamic_img_pad=True`), so timm resamples
  its position embeddings to each input's patch grid and pads a side that is not a multiple of the patch: the
  weights load at their own grid and the model takes any input size (torchvision's ViTs take exactly one).
  Models that refuse those arguments and whose pretrained config says `fixed_input_size` (Swin, MaxViT) stay
  fixed-input.
Weights come from the Hugging Face cache (engine.models.families.timm_hub).
"""

from __future__ import annotations

import functools
from typing import Any

import timm
import torch
from timm.data.config import resolve_data_config
from timm.models import get_pretrained_cfg
from timm.models._manipulate import group_parameters
from torch import nn

from engine.models.family import Stage
from engine.runtime.devices import parameters_on_meta

# timm's fine-tuning recipes decay the learning rate by layer for ViTs (BEiT, MAE, DeiT III use 0.65-0.75):
# block i of L trains at lr * LAYER_DECAY ** (L - i), the head at lr.
LAYER_DECAY = 0.75


@functools.cache
def pretrained_names() -> tuple[str, ...]:
    """Every pretrained model timm knows, by timm's name (architecture.tag)."""
    return tuple(timm.list_pretrained())


def version() -> str:
    return timm.__version__


def pretrained_cfg(name: str) -> dict | None:
    """timm's pretrained config of `<arch>.<tag>` (a bare `<arch>` means its default tag), as a dict; None when
    timm has no pretrained model of that name."""
    try:
        cfg = get_pretrained_cfg(name, allow_unregistered=True)
    except RuntimeError:  # timm: "Invalid pretrained tag (…) for …"
        cfg = None
    if cfg is None or not timm.is_model(name.split(".")[0]):
        return None
    return cfg.to_dict()


def _create(name: str, dynamic: bool, **kwargs) -> nn.Module:
    if dynamic:
        kwargs.update(dynamic_img_size=True, dynamic_img_pad=True)
    return timm.create_model(name, **kwargs)


@functools.cache
def accepts_any_size(name: str) -> bool:
    """Whether the architecture takes timm's dynamic input size (ViTs, EVA, …); checked by building it with no
    memory (milliseconds): a model whose constructor refuses the argument raises TypeError.

    Built first with only its parameters on the meta device (RegNet computes its widths from real tensors),
    then wholly on it: the RoPE ViTs (vit_*_rope_mixed_*) compute their frequencies from a meta parameter and
    a CPU tensor, which raises. A model that builds neither way counts as fixed-size: it is then given the
    input size it was made for, which always works."""
    for on_meta in (parameters_on_meta, lambda: torch.device("meta")):
        try:
            with on_meta():
                _create(name, True, pretrained=False)
        except TypeError:
            return False
        except Exception:  # noqa: BLE001 - any other failure is about building on meta, not the argument
            continue
        return True
    return False


def spec_fields(name: str, cfg: dict) -> dict:
    """The BackboneSpec fields of timm's model `name`, from its pretrained config `cfg` (resolve_data_config)."""
    data = resolve_data_config(pretrained_cfg=cfg)
    size = int(data["input_size"][-1])
    # timm's eval transform: resize to floor(size / crop_pct), center-crop size (timm.data.transforms_factory)
    resize = int(size / data["crop_pct"]) if data.get("crop_mode", "center") == "center" else size
    dynamic = accepts_any_size(name)
    fixed = bool(cfg.get("fixed_input_size")) and not dynamic
    if dynamic:
        note = "any input size: timm resamples the position embeddings to the input's patch grid (dynamic_img_size)"
    elif fixed:
        note = f"fixed input: exactly {size} px (timm's pretrained config says fixed_input_size)"
    else:
        note = "any input size (convolutional)"
    return {
        "input_size": size, "resize_size": resize,
        "interpolation": data["interpolation"] if data["interpolation"] in ("bilinear", "bicubic") else "bilinear",
        "mean": tuple(float(v) for v in data["mean"]), "std": tuple(float(v) for v in data["std"]),
        "fixed_input": fixed,
        "min_input": max(32, int(cfg["min_input_size"][-1])) if cfg.get("min_input_size") else 32,
        "extra": {"timm_name": name, "hf_hub_id": cfg.get("hf_hub_id"),
                  "num_classes": int(cfg.get("num_classes") or 0), "dynamic_img_size": dynamic,
                  "crop_pct": data["crop_pct"], "crop_mode": data.get("crop_mode", "center"),
                  "input": note, "license": cfg.get("license")},
    }


def create_model(name: str, dynamic: bool, state_dict: dict | None = None) -> nn.Module:
    """timm's model with its pretrained head size. With `state_dict`, timm loads it itself (create_model with
    pretrained=True and the state dict as the source): its checkpoint filter adapts what the hub stores to
    the architecture (position embeddings resampled, …), and a mismatch raises (strict)."""
    if state_dict is None:
        return _create(name, dynamic, pretrained=False)
    return _create(name, dynamic, pretrained=True, pretrained_cfg_overlay={"state_dict": state_dict})


def is_transformer(model: nn.Module) -> bool:
    """Transformers declare the tokens and tables that take no weight decay (`no_weight_decay()`: ViT's
    pos_embed and cls_token, Swin's relative-position tables, EVA's, BEiT's …); timm's recipes fine-tune them
    with layer decay. (A few hybrids that declare such tokens, FastViT, EdgeNeXt, get it too: harmless.)"""
    hook = getattr(model, "no_weight_decay", None)
    return bool(hook is not None and hook())


def layer_groups(model: Any, coarse: bool) -> list[list[str]]:
    """Parameter names by timm's `group_matcher`, input to output (unmatched ones — neck, head — last)."""
    groups = group_parameters(model, model.group_matcher(coarse=coarse))
    return [groups[k] for k in sorted(groups)]


def layer_decay_scales(n_groups: int, decay: float = LAYER_DECAY) -> list[float]:
    """timm's param_groups_layer_decay scales, group i of n -> decay ** (n - i): the head (removed from the
    timm model here and trained at the full rate) is layer n, as in timm's grouping of a whole model."""
    return [decay ** (n_groups - i) for i in range(n_groups)]


def no_weight_decay_names(model: nn.Module) -> set[str]:
    hook = getattr(model, "no_weight_decay", None)
    return set(hook()) if hook is not None else set()


def timm_stages(model: nn.Module) -> list[Stage]:
    """timm's group_matcher groups, each as the largest modules whose parameters are all in it (so a frozen
    stage's modules can be put in eval mode) plus its loose parameters (ViT's cls_token and pos_embed)."""
    transformer = is_transformer(model)
    groups = layer_groups(model, coarse=not transformer)
    scales = layer_decay_scales(len(groups)) if transformer else [None] * len(groups)
    no_decay_names = no_weight_decay_names(model)
    params = dict(model.named_parameters())
    stages = []
    for names, scale in zip(groups, scales):
        members = set(names)
        modules, taken = [], set()
        for mname, module in model.named_modules():
            if not mname or any(mname.startswith(t + ".") for t in taken):
                continue
            own = {f"{mname}.{n}" for n, _ in module.named_parameters()}
            if own and own <= members:
                modules.append(module)
                taken.add(mname)
                members -= own
        if members:
            modules.append(nn.ParameterList([params[n] for n in names if n in members]))
        title = _group_title(names, len(stages))
        no_decay = frozenset(id(params[n]) for n in names if n in no_decay_names)
        stages.append(Stage(title, modules, scale, no_decay))
    return stages


def _group_title(names: list[str], index: int) -> str:
    """A group's name from its parameters' common prefix per top-level module: 'layer3', 'blocks.11+norm';
    the first group (timm's 'stem' matcher: conv1/bn1, patch_embed/cls_token/pos_embed) is 'stem'."""
    if index == 0:
        return "stem"
    by_top: dict[str, list[list[str]]] = {}
    for n in names:
        parts = n.split(".")
        by_top.setdefault(parts[0], []).append(parts)
    titles = []
    for parts in by_top.values():
        common = []
        for level in zip(*parts):
            if len(set(level)) > 1 or level[0] in ("weight", "bias"):
                break
            common.append(level[0])
        titles.append(".".join(common) or parts[0][0])
    return "+".join(titles)
