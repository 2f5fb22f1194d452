"""Every backbone `tlbench backbones --all` lists really works: it builds, its features come out of the probe's
feature extraction with the width the registry reports, it splits into stages, its random architecture equals
the one torchvision builds for its weights, and the listing itself exits 0.

Cost: 83 names on a 2-core CPU; the fast tier runs the first name of each builder (`sweep`), the full suite
all of them. Models are built without their default initialisation (parameters allocated on
the meta device, then filled with small constants), at the smallest input each allows. Transformers (ViT, Swin,
MaxViT) cannot shrink their input, and the biggest nets hold up to 645M parameters, so before the forward pass
each run of shape-preserving repeated blocks inside an nn.Sequential or a ModuleList (a ResNet stage's blocks after its first,
a ViT's encoder layers after the first, …) is cut to its first block: found by running the model on the meta
device with hooks, so no block that changes the shape is ever removed. Every module type still runs, and the
feature width (what the test checks) does not depend on depth. The stage and architecture checks use the full
models.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision
from helpers.data import ROOT
from PIL import Image
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import engine.models.build
from engine.features.cache import cache_key, cached_features
from engine.models.build import build_classifier
from engine.models.families.torchvision_models import (
    architecture_kwargs,
    torchvision_weights,
    without_aux_heads,
)
from engine.models.registry import available_backbones, empty_architecture, family_of, feature_dim, get_spec
from engine.models.stages import backbone_stages
from engine.runtime.devices import parameters_on_meta

ALL = available_backbones(all_models=True)


def builder(name: str) -> str:
    """The code that builds it: torchvision's builder module (resnet covers ResNeXt and Wide ResNet, efficientnet
    B0-B7 and V2, …), or the family for the others."""
    spec = get_spec(name)
    return torchvision.models.get_model_builder(name).__module__ if spec.family == "torchvision" else spec.family


def sweep(names: list[str]) -> list:
    """Every name; beyond the first of each builder a case is marked `sweep`, so the fast tier
    (`pytest -m "not system"`) runs each builder's code once and the full suite every architecture."""
    seen: set[str] = set()
    cases = []
    for name in names:
        first = builder(name) not in seen
        seen.add(builder(name))
        cases.append(name if first else pytest.param(name, marks=pytest.mark.sweep))
    return cases


def split_head(name: str, model: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """The ImageNet head taken off as the backbone's family does it (SqueezeNet's is a convolution)."""
    return family_of(name).split_head(model, get_spec(name))


def smallest_input(name: str) -> int:
    spec = get_spec(name)
    return spec.input_size if spec.fixed_input else spec.min_input


def _identity(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x


def repeated_blocks(name: str, architecture: nn.Module) -> list[tuple[str, str]]:
    """(container, child) pairs that can go: the child keeps its input's shape, and an earlier sibling of the
    same type stays. Shapes come from a forward pass on the meta device (no memory, no compute), on a copy."""
    size = smallest_input(name)
    model = copy.deepcopy(architecture).to("meta")
    split_head(name, model)
    keeps_shape: dict[int, bool] = {}

    def hook(module, args, out):
        keeps_shape[id(module)] = (bool(args) and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor)
                                   and args[0].shape == out.shape)

    # ModuleLists too: MaxViT's and EfficientNet-Lite's blocks are ModuleLists their forward runs in order
    sequentials = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Sequential, nn.ModuleList))]
    hooks = [c.register_forward_hook(hook) for _, s in sequentials for c in s.children()]
    # normalisation layers keep their input's shape: passed through here, since on the meta device they run
    # PyTorch's Python decompositions (half of this pass's time)
    with torch.no_grad(), mock.patch.object(_BatchNorm, "forward", _identity), \
            mock.patch.object(nn.LayerNorm, "forward", _identity), mock.patch.object(nn.GroupNorm, "forward", _identity):
        model.eval()(torch.zeros(1, 3, size, size, device="meta"))
    for h in hooks:
        h.remove()
    removable = []
    for seq_name, seq in sequentials:
        kept: set[type] = set()
        for child_name, child in seq.named_children():
            if type(child) in kept and keeps_shape.get(id(child)):
                removable.append((seq_name, child_name))
            else:
                kept.add(type(child))
    return removable


def cheap_architecture(name: str) -> nn.Module:
    """The architecture, shortened as described above, its parameters filled with small constants on the CPU."""
    model = empty_architecture(get_spec(name))
    removable = repeated_blocks(name, model)
    for seq_name, child_name in removable:
        try:
            model.get_submodule(seq_name)._modules.pop(child_name, None)
        except AttributeError:  # inside a block removed already
            pass
    with torch.no_grad():
        for module in model.modules():
            for key, p in list(module._parameters.items()):
                if p is not None and p.is_meta:
                    fan_in = p[0].numel() if p.ndim > 1 else 0
                    value = 1.0 / fan_in if fan_in else (1.0 if key == "weight" else 0.0)
                    module._parameters[key] = nn.Parameter(torch.full_like(p, value, device="cpu"),
                                                           requires_grad=p.requires_grad)
            for key, b in list(module._buffers.items()):
                if b is not None and b.is_meta:
                    module._buffers[key] = (torch.ones_like(b, device="cpu") if key == "running_var"
                                            else torch.zeros_like(b, device="cpu"))
    return model


@pytest.fixture
def two_images(tmp_path_factory):
    # per test (milliseconds): a module-scoped fixture would tie the 83 tests to one pytest-xdist worker
    root = tmp_path_factory.mktemp("two")
    paths = []
    for i in range(2):
        path = root / f"img{i}.png"
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return root, paths


@pytest.mark.parametrize("name", sweep(ALL))
def test_every_listed_backbone_gives_features_of_the_registry_width(name, two_images, monkeypatch):
    """build_classifier's real path (random weights: the architecture with torchvision's arguments for the
    weights, its ImageNet head split off), then the probe's cached feature extraction on two tiny images."""
    root, paths = two_images
    width = feature_dim(name)  # the registry's answer, from the full architecture
    cheap = cheap_architecture(name)
    # build_classifier's module holds its own name for it: patched there, or the full model runs (65 s for vit_h_14)
    monkeypatch.setattr(engine.models.build, "build_architecture", lambda spec, seed=None: cheap)
    model, identity = build_classifier(name, 3, "random", seed=0)
    assert identity == "random:seed=0"
    assert {id(p) for p in model.backbone.parameters()} <= {id(p) for p in cheap.parameters()}  # the cheap one ran
    spec = get_spec(name)
    prep = spec.preprocessing(smallest_input(name))
    feats, errors, stats = cached_features(lambda: model, cache_key(name, identity, prep), root, paths,
                                           torch.device("cpu"), batch_size=2, workers=0)
    assert errors == {} and stats["feature_cache"] == "miss"
    assert tuple(feats.shape) == (2, width) == (2, model.head.in_features)
    assert torch.isfinite(feats).all()


@pytest.mark.parametrize("name", sweep(ALL))
def test_every_listed_backbone_splits_into_stages_that_cover_every_parameter_once(name):
    backbone, _ = split_head(name, empty_architecture(get_spec(name)))
    stages = backbone_stages(backbone)
    ids = [id(p) for s in stages for p in s.parameters()]
    assert len(ids) == len(set(ids))  # no parameter in two stages
    assert set(ids) == {id(p) for p in backbone.parameters()}  # and none left out
    assert len(stages) >= 3, [s.name for s in stages]  # something for --unfreeze to count


def simple_attributes(model: nn.Module) -> dict:
    """Every module's plain settings (transform_input, aux_logits, image_size, …), by module name. (None is
    left out: GoogLeNet's dropped aux heads are None as attributes in one build, as children in the other.)"""
    plain = (bool, int, float, str, tuple)
    return {name: {k: v for k, v in vars(m).items() if not k.startswith("_") and isinstance(v, plain)}
            for name, m in model.named_modules()}


@pytest.mark.parametrize("name", sweep([n for n in ALL if get_spec(n).family == "torchvision"]))
def test_random_architecture_equals_what_torchvision_builds_for_the_weights(name, monkeypatch):
    """What architecture_kwargs passes for a random backbone (and for loading a full checkpoint) must equal
    what torchvision's builder makes of `weights=` (the file's loading is skipped: meta tensors only)."""
    spec = get_spec(name)
    ours = empty_architecture(spec)
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda self, *a, **k: {})
    monkeypatch.setattr(nn.Module, "load_state_dict", lambda self, *a, **k: None)
    with parameters_on_meta():
        theirs = without_aux_heads(torchvision.models.get_model(name, weights=torchvision_weights(spec)))
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert simple_attributes(ours) == simple_attributes(theirs)
    if name in ("googlenet", "inception_v3"):  # the defects the issue names, spelled out
        assert ours.transform_input and not ours.aux_logits and architecture_kwargs(spec)["transform_input"]


def test_backbones_all_lists_every_name_and_exits_0(isolated_env):
    out = subprocess.run([sys.executable, "-m", "engine.cli", "backbones", "--all", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    rows = json.loads(out.stdout)["backbones"]
    assert [r["name"] for r in rows] == ALL
    assert all(r["feature_dim"] == feature_dim(r["name"]) for r in rows)
    table = subprocess.run([sys.executable, "-m", "engine.cli", "backbones", "--all"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "regnet_y_128gf" in table.stdout and "vit_h_14" in table.stdout
