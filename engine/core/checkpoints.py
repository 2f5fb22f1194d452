"""Checkpoints (saved atomically, loaded with weights_only=True) and the library versions a run records.

The torch half of the run directory (engine.core.runs is the other, torch-free half)."""

from __future__ import annotations

import io
import platform
from pathlib import Path

import torch
import torchvision

from engine import __version__
from engine.core.errors import RunError
from engine.core.files import atomic_write_bytes

CHECKPOINT_FORMAT = "tlbench-checkpoint/1"


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # TorchVersion is a str subclass that weights_only refuses
        "torchvision": str(torchvision.__version__),
        "tlbench": __version__,
    }


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to memory, then an atomic replace: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, buf)
    # A process killed mid-write leaves its temporary file behind; one writer per run, so clear them.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with weights_only=True: a checkpoint carrying a pickled payload is refused, never executed."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"Checkpoint {path} not found.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for unsafe or broken files
        raise RunError(
            f"Checkpoint {path} could not be loaded safely: {unpickling_reason(err)}. "
            "tlbench only loads plain tensors and data (weights_only=True); "
            "a file with pickled code is refused on purpose."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RunError(f"{path} is not a tlbench checkpoint (no '{CHECKPOINT_FORMAT}' marker).")
    return ckpt


def unpickling_reason(err: BaseException) -> str:
    """The informative line of torch.load's long weights_only error (which global it refused)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported global" in ln or "Unsupported operand" in ln:
            return ln.replace("WeightsUnpickler error: ", "").split(" was not an allowed global")[0]
    return lines[0] if lines else type(err).__name__
