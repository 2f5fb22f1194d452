"""`--precision auto`: which autocast dtype runs fastest on this device, measured once and remembered.

A reduced precision is a large lever and a trap: bf16 autocast ran EfficientNet-Lite0 1.3x as fast as fp32 on
an AVX-512 Xeon and 13x slower on an AVX2-only EPYC. So `auto` never guesses. It lists the candidates the device
can run safely (fp32 always; bf16 on a CPU whose instruction set has bf16 or AVX-512 arithmetic, never fp16
on a CPU; on CUDA bf16 where supported, else fp16 under a GradScaler), measures each on a few batches of the
job's own forward pass when there is more than one, and keeps a reduced precision only when it beat fp32 by
MARGIN. The choice and the rates are remembered in <cache>/precision/, keyed by the device's name, the CPU's
instruction-set flags, torch's version and the backbone, so a machine measures once.

A job that has no model at hand when it chooses (attacks, dreams, the run record) measures a small reference
network of depthwise and pointwise convolutions, the operators of the mobile backbones, under the backbone
name "reference".
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.files import atomic_write_json
from engine.core.paths import cache_dir

if TYPE_CHECKING:
    import torch
    from torch import nn

# torch is imported inside the functions: engine.runtime.precision is read by the CLI's parsers, and
# `tlbench --help` should not wait seconds for torch.

# A reduced precision must beat fp32 by this much to be chosen: a 2% win is within this machine's noise,
# and fp32 is the safer of two equal choices.
MARGIN = 1.05
REFERENCE = "reference"
# Instruction-set flags that say whether bf16 can be fast on a CPU (x86 /proc/cpuinfo "flags", aarch64
# "Features"), and the ones worth recording beside them.
BF16_FLAGS = {"avx512f", "avx512_bf16", "amx_bf16", "bf16"}
RECORDED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile", "amx_bf16",
                  "amx_fp16", "asimd", "bf16", "sve")
# TLBENCH_PRECISION_MEASURE=1 measures bf16 on a CPU even where its flags say it is slow (doctor, bench/).
FORCE_ENV = "TLBENCH_PRECISION_MEASURE"


@dataclass
class AutoChoice:
    """What `auto` chose on one device for one backbone, and why."""

    choice: str  # "fp32" | "bf16" | "fp16"
    rates: dict[str, float] = field(default_factory=dict)  # images/s per measured precision; empty: not measured
    reason: str = ""
    key: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_info() -> tuple[str, list[str]]:
    """(the CPU's model name, its flags that matter for reduced precision) from /proc/cpuinfo, where there is one."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        head, _, value = line.partition(":")
        head = head.strip().lower()
        if head == "model name" and value.strip():
            name = value.strip()
        elif head in ("flags", "features") and not flags:
            flags = set(value.split())
    return name, [f for f in RECORDED_FLAGS if f in flags]


def device_key(device: torch.device, backbone: str | None = None) -> dict:
    """What a measurement depends on: the device's name, the CPU's flags and ISA level, torch, the backbone."""
    import torch

    cpu_name, flags = cpu_info()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
    else:
        name = cpu_name if device.type == "cpu" else device.type
    return {"device_type": device.type, "device": name, "cpu_flags": flags,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "backbone": backbone or REFERENCE}


def candidates(key: dict, force: bool = False) -> tuple[list[str], str]:
    """The precisions worth measuring on the device `key` describes, and why the others are left out."""
    kind = key["device_type"]
    if kind == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return ["fp32", "bf16"], "fp16 left out: bf16 has fp32's range and needs no loss scaling"
        return ["fp32", "fp16"], "no bf16 on this GPU"
    if kind == "cpu":
        if force or BF16_FLAGS & set(key["cpu_flags"]) or key["cpu_capability"].startswith("AVX512"):
            return ["fp32", "bf16"], "fp16 is never chosen on a CPU"
        return ["fp32"], (f"this CPU ({key['cpu_capability']}, no AVX-512 or bf16 instructions) emulates bf16: "
                          "it ran 13x slower than fp32 on one such CPU, so it is not measured")
    return ["fp32"], f"reduced precision is not measured on {kind}; ask for it with --precision"


def choose(rates: dict[str, float], margin: float = MARGIN) -> str:
    """fp32 unless a reduced precision ran at least `margin` times as fast; then the fastest of those."""
    base = rates.get("fp32", 0.0)
    best, best_rate = "fp32", base
    for name, rate in rates.items():
        if name != "fp32" and rate >= base * margin and rate > best_rate:
            best, best_rate = name, rate
    return best


def store_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "precision" / f"{key['backbone']}-{digest}.json"


def remembered() -> list[dict]:
    """Every remembered choice on this machine (for `tlbench doctor`), newest first."""
    out = []
    for path in sorted((cache_dir() / "precision").glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def forward_rate(forward: Callable[[torch.Tensor], object], example: torch.Tensor, dtype: torch.dtype | None,
                 batches: int = 3, budget_s: float = 20.0) -> float:
    """Images/s of `forward(example)` under autocast to `dtype` (None: fp32), in inference mode: the best of
    `batches` timed batches after one warm-up (the best, since other processes only ever slow a batch down).
    Stops early once `budget_s` is spent, so a precision that is 13x slower costs seconds, not minutes."""
    import torch

    device = example.device
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        start = time.perf_counter()
        forward(example)
        _sync(device)
        for _ in range(batches):
            if time.perf_counter() - start > budget_s and times:
                break
            t = time.perf_counter()
            forward(example)
            _sync(device)
            times.append(time.perf_counter() - t)
        if not times:
            times.append(time.perf_counter() - start)
    return len(example) / max(min(times), 1e-9)


def reference_model(device: torch.device) -> nn.Module:
    """A small stand-in for a mobile backbone (conv-BN-ReLU, depthwise and pointwise blocks), in eval mode."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
    for cin, cout in ((32, 64), (64, 128), (128, 256)):
        layers += block(cin, cout, 2)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    with torch.random.fork_rng(devices=[]):  # random weights, without moving the job's seeded stream
        torch.manual_seed(0)
        model = nn.Sequential(*layers)
    return model.to(device=device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # nn.Module.to takes memory_format; its stubs do not say so


def measure_model(model: nn.Module, device: torch.device, size: int, names: list[str],
                  forward: Callable[[torch.Tensor], object] | None = None) -> dict[str, float]:
    """Images/s of `model`'s forward pass (or `forward`) at `size` px for each precision in `names`."""
    import torch

    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    batch = 32 if device.type == "cuda" else 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        example = torch.rand(batch, 3, size, size, device="cpu")  # made on the host, then moved: same on any device
    example = example.to(device).contiguous(memory_format=torch.channels_last)
    fn = forward or model
    return {name: round(forward_rate(fn, example, dtypes[name]), 2) for name in names}


# The measurement itself; tests replace it with a fake that returns rates without running anything.
Measure = Callable[[list[str]], dict[str, float]]


def resolve_auto(device: torch.device, backbone: str | None = None, measure: Measure | None = None) -> AutoChoice:
    """`auto` on `device` for `backbone`: the remembered choice, or a new measurement (`measure(names)` ->
    images/s per name; default: the reference network at 224 px), remembered for next time."""
    key = device_key(device, backbone)
    names, why = candidates(key, force=os.environ.get(FORCE_ENV) == "1")
    if len(names) == 1:
        return AutoChoice(names[0], {}, why, key)
    path = store_path(key)
    try:
        data = json.loads(path.read_text())
        if data.get("key") == key and data.get("choice") in names:
            return AutoChoice(data["choice"], data.get("rates", {}), data.get("reason", ""), key)
    except (OSError, ValueError):
        pass  # not measured yet, or a damaged file: measure again
    def reference(ns: list[str]) -> dict[str, float]:
        return measure_model(reference_model(device), device, 224, ns)

    rates = (measure or reference)(names)
    choice = choose(rates)
    best = max(rates, key=lambda n: rates[n])
    reason = (f"measured {', '.join(f'{n} {r:.1f}' for n, r in rates.items())} images/s on {key['device']}: "
              f"{choice}" + (f" ({best} was not {MARGIN}x fp32)" if best != choice else "") + f"; {why}")
    found = AutoChoice(choice, rates, reason, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**found.to_dict(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    except OSError:
        pass  # an unwritable cache only means measuring again next run
    return found
