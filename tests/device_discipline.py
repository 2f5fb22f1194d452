"""Device bugs made visible on a CPU-only machine.

On a GPU box, a tensor that engine code creates without naming a device lands on the CPU and then meets a
model on CUDA ("Expected all tensors to be on the same device"); a float64 tensor on Apple's MPS fails
("MPS framework doesn't support float64"). CI has neither device, so these stand in for them:

- `DeviceDiscipline`: while it is active, every tensor factory (torch.rand, torch.zeros, torch.tensor, …)
  called directly from engine code (not by torch on its behalf) must name its device — taken from the model or the batch, or "cpu" for
  host-side bookkeeping, said explicitly. A factory that relies on the default device is exactly the one that
  lands on the CPU next to a CUDA model. `*_like` and `Tensor.new_*` inherit their device and pass.
  It also refuses any float64 tensor produced by an operation called from engine code (MPS has no float64;
  sums and counts belong in Python floats).
- Meta models (`meta_model`): model-preparation code (BatchNorm folding, inference copies, stages, parameter
  groups) run on a model on the `meta` device; any tensor it makes on the CPU meets the model and raises.

What this cannot catch: device-specific kernels (a CUDA-only op, cuDNN nondeterminism), real memory use,
NCCL behaviour, speed. bench/gpu_smoke.sh runs every job on CUDA for those.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

import engine

ENGINE_DIR = str(Path(engine.__file__).resolve().parent)

# Factories whose result's device comes from the default device unless `device=` is given.
FACTORIES = {
    torch.rand, torch.randn, torch.randint, torch.randperm, torch.zeros, torch.ones, torch.empty, torch.full,
    torch.tensor, torch.as_tensor, torch.arange, torch.linspace, torch.logspace, torch.eye,
    torch.empty_strided, torch.normal, torch.scalar_tensor,
}
FACTORY_NAMES = {f.__name__ for f in FACTORIES}


def _caller() -> tuple[str, int] | None:
    """The first frame outside torch and this file: (filename, line)."""
    frame = sys._getframe(2)
    here = __file__
    while frame is not None:
        name = frame.f_code.co_filename
        if name != here and "/torch/" not in name and not name.startswith("<"):
            return name, frame.f_lineno
        frame = frame.f_back
    return None


def _from_engine(where: tuple[str, int] | None) -> bool:
    return where is not None and str(Path(where[0]).resolve()).startswith(ENGINE_DIR)


class DeviceDiscipline(TorchFunctionMode):
    """Records engine code that creates a tensor on the default device, or a float64 tensor.

    Use as a context manager around a job (run it with workers=0, in this thread); `violations` lists
    "file:line: what" strings; `check()` raises AssertionError listing them.
    """

    def __init__(self, float64: bool = True):
        super().__init__()
        self.float64 = float64
        self.violations: list[str] = []

    def _note(self, where: tuple[str, int] | None, what: str) -> None:
        text = f"{Path(where[0]).relative_to(Path(ENGINE_DIR).parent)}:{where[1]}: {what}" if where else what
        if text not in self.violations:
            self.violations.append(text)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        # Only factories engine code calls directly: torch's own host-side bookkeeping on the engine's behalf
        # (a DataLoader draws its base seed with torch.empty(()) each time it is iterated) is not engine code.
        direct = "/torch/" not in sys._getframe(1).f_code.co_filename
        if direct and name in FACTORY_NAMES and func in FACTORIES and kwargs.get("device") is None:
            where = _caller()
            if _from_engine(where):
                self._note(where, f"torch.{name}(…) without device= (on a GPU box it lands on the CPU)")
        out = func(*args, **kwargs)
        if self.float64 and isinstance(out, torch.Tensor) and out.dtype == torch.float64:
            where = _caller()
            if _from_engine(where):
                self._note(where, f"{name or func} made a float64 tensor (MPS has no float64)")
        return out

    def check(self) -> None:
        if self.violations:
            raise AssertionError("device discipline:\n  " + "\n  ".join(self.violations))


def meta_model(build):
    """`build()` run with the default device set to meta: its parameters and buffers take no memory."""
    with torch.device("meta"):
        return build()
