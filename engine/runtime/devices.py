"""Choosing the device a job runs on, and saying why; the profile of the machine behind it.

The choices themselves (DEVICES) are in the spec layer (engine.core.choices), which the parsers read without
torch.
"""

from __future__ import annotations

import contextlib
import platform

import torch
from torch.overrides import TorchFunctionMode

from engine.core.choices import DEVICES
from engine.core.errors import ConfigError
from engine.runtime.machine import MachineProfile, cpu_info


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def device_type(choice: str = "auto") -> str:
    """"cuda", "mps" or "cpu" for a --device choice. Asks only whether a GPU exists: it names none and
    selects none, so a torchrun rank can still select its own GPU first (engine.runtime.distributed.join)."""
    if choice not in DEVICES:
        raise ConfigError(f"Unknown device {choice!r}. Allowed: {', '.join(DEVICES)}.")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError(
                "--device cuda was asked for, but PyTorch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}). "
                "Check `nvidia-smi`, or use --device auto."
            )
        return "cuda"
    if choice == "mps" or (choice == "auto" and _mps_available()):
        if not _mps_available():
            raise ConfigError("--device mps was asked for, but Apple's MPS backend is not available here.")
        return "mps"
    return "cpu"


def describe_device(choice: str = "auto", index: int | None = None) -> tuple[str, str]:
    """(device string, the reason it was chosen) — used by `doctor` and by every job. `index`: the CUDA
    device this process uses (a torchrun rank's local GPU, selected before this is called); default 0."""
    kind = device_type(choice)
    if kind == "cuda":
        name = torch.cuda.get_device_name(0 if index is None else index)
        return "cuda", f"CUDA GPU found: {name} ({torch.cuda.device_count()} visible)"
    if kind == "mps":
        return "mps", "Apple Silicon GPU (MPS) available"
    if choice == "cpu":
        return "cpu", "asked for with --device cpu"
    why = "no CUDA GPU visible"
    if torch.version.cuda is None:
        why += " (this PyTorch is a CPU-only build)"
    return "cpu", f"{why}; using {torch.get_num_threads()} CPU threads"


def resolve_device(choice: str = "auto") -> torch.device:
    return torch.device(device_type(choice))


# In-place methods that only write values (nn.init's normal_, uniform_, zero_, …, and the arithmetic of
# trunc_normal_): on a meta tensor they change nothing, yet each ran through torch's Python reference
# implementations: 60% of a meta build (all 83 torchvision architectures: 10.3 s -> 4.3 s on a 2-core CPU).
_KEEPS_SHAPE = {"requires_grad_", "resize_", "resize_as_", "set_", "as_strided_", "share_memory_", "squeeze_",
                "unsqueeze_", "transpose_", "t_", "swapdims_", "swapaxes_", "detach_", "retain_grad"}


def _meta_target(func, args, kwargs) -> torch.Tensor | None:
    """The meta tensor an in-place initialiser would write (nn.init passes it by keyword), else None."""
    name = getattr(func, "__name__", "")
    if not name.endswith("_") or name.startswith("_") or name in _KEEPS_SHAPE:
        return None
    target = args[0] if args else kwargs.get("tensor")
    return target if isinstance(target, torch.Tensor) and target.is_meta else None


@contextlib.contextmanager
def parameters_on_meta():
    """While active (in this thread), tensors allocated with torch.empty/zeros/ones/full/rand/randn (what nn
    modules create their parameters and buffers with) go to the meta device.

    Unlike `with torch.device("meta")`, computations stay real: RegNet computes its stage widths with
    torch.arange(...).tolist() in its constructor, which a meta tensor cannot do. So any architecture builds
    here in milliseconds with no memory, whatever its size.
    """
    allocators = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.empty_strided}

    class AllocateOnMeta(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in allocators and kwargs.get("device") is None:
                kwargs["device"] = "meta"
            elif (target := _meta_target(func, args, kwargs)) is not None:
                return target  # an initialiser writing values a meta tensor does not hold: nothing to do
            return func(*args, **kwargs)

    with AllocateOnMeta():
        yield


def machine_profile(device: torch.device) -> MachineProfile:
    """The profile of the machine this process runs on, for `device`: the one place that reads the real
    machine (engine.runtime.precision_auto decides from the profile; tests pass simulated ones)."""
    cpu_name, flags = cpu_info()
    common = {"arch": platform.machine(), "cpu_flags": tuple(flags),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return MachineProfile("cuda", torch.cuda.get_device_name(index), cuda_capability=(major, minor), **common)
    return MachineProfile(device.type, cpu_name if device.type == "cpu" else device.type, **common)
