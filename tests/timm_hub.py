"""A Hugging Face hub cache built in a test: timm models with random weights (pretrained=False), saved the way
the hub stores them, so tlbench finds and loads them through its normal path (no test hook)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

REVISION = "0123456789abcdef0123456789abcdef01234567"


def put_in_hub_cache(cache: Path, name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """timm's `name` (architecture.tag) with weights drawn from `seed`, saved as
    `models--timm--<name>/snapshots/<rev>/model.safetensors` with `refs/main`; returns the model in eval mode
    (created with `kwargs`, e.g. dynamic_img_size=True: the same weights, any input size)."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    repo = cache / f"models--timm--{name}"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
    return model


def hub_cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty hub cache for this test: HF_HUB_CACHE (and HF_HOME) point into tmp_path."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache
