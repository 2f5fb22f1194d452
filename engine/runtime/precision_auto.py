"""`--precision auto`: which autocast dtype runs fastest on this device, measured once and remembered.

A reduced precision is a large lever and a trap: bf16 autocast ran EfficientNet-Lite0 1.3x as fast as fp32 on
an AVX-512 Xeon and 13x slower on an AVX2-only EPYC. So `auto` never guesses. The machine is described by a
`MachineProfile` (engine.runtime.machine); `candidates(profile)` lists what it can run safely and fast, and when
there is more than one, each is timed on the job's own forward pass (warm-up excluded, repeated, the median)
and a reduced precision is kept only when it beats fp32 by MARGIN. The choice and the rates are remembered in
<cache>/precision/, keyed by the profile and the backbone, so a machine measures once and every later run of the
same command gets the same choice.

A measurement never changes a job's numbers: it runs under a fork of the random generators (`resolve_auto`),
on a copy of the model, and a run records what was chosen before its first step (engine.train), so resume, eval,
predict and explain replay the recorded precision instead of deciding again.

TLBENCH_PRECISION_AUTO=fp32|bf16|fp16 pins what `auto` resolves to, without measuring (the test suite pins fp32,
so no test depends on the machine it runs on; a cluster of mixed nodes can pin one choice for all).

A job that has no model at hand when it chooses (attacks and dreams on a backbone) measures a small reference
network of depthwise and pointwise convolutions, the operators of the mobile backbones, under the backbone
name "reference".
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.core.errors import ConfigError
from engine.core.files import atomic_write_json
from engine.core.paths import cache_dir
from engine.runtime.devices import machine_profile
from engine.runtime.machine import MachineProfile

# A reduced precision must beat fp32 by this much, median against median, to be chosen: run-to-run noise on a
# shared machine reached 5%, and fp32 is the safer of two near-equal choices.
MARGIN = 1.10
REFERENCE = "reference"
# TLBENCH_PRECISION_MEASURE=1 measures bf16 on a CPU even where its flags say it is slow (doctor, bench/).
FORCE_ENV = "TLBENCH_PRECISION_MEASURE"
# TLBENCH_PRECISION_AUTO=<precision> pins auto's answer (tests, mixed clusters).
PIN_ENV = "TLBENCH_PRECISION_AUTO"
PINNABLE = ("fp32", "bf16", "fp16")
# Each precision is timed on REPEATS batches after one warm-up batch, the precisions interleaved (so a slow
# spell of the machine hits all of them), and judged on its median.
REPEATS = 5


@dataclass
class AutoChoice:
    """What `auto` chose on one device for one backbone, and why."""

    choice: str  # "fp32" | "bf16" | "fp16"
    rates: dict[str, float] = field(default_factory=dict)  # images/s per measured precision; empty: not measured
    reason: str = ""
    key: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def candidates(profile: MachineProfile, force: bool = False) -> tuple[list[str], str]:
    """The precisions worth measuring on the machine `profile` describes, and why the others are left out."""
    kind = profile.device_type
    if kind == "cuda":
        major = profile.cuda_capability[0] if profile.cuda_capability else 0
        if major >= 8:  # Ampere and later: bf16 tensor cores
            return ["fp32", "bf16"], (f"sm_{profile.cuda_sm}: bf16 is native; fp16 left out (bf16 has fp32's range "
                                      "and needs no loss scaling)")
        # Volta/Turing (T4, V100) report bf16 as supported, but emulate it: fp16 with a GradScaler is their fast path
        return ["fp32", "fp16"], f"sm_{profile.cuda_sm}: no native bf16 (it would be emulated), fp16 with loss scaling"
    if kind == "cpu":
        if force or profile.cpu_bf16_capable:
            return ["fp32", "bf16"], "fp16 is never chosen on a CPU"
        return ["fp32"], (f"this CPU ({profile.cpu_capability or profile.arch}, no AVX-512 or bf16 instructions) "
                          "emulates bf16: it ran 13x slower than fp32 on one such CPU, so it is not measured")
    return ["fp32"], f"reduced precision is not measured on {kind}; ask for it with --precision"


def choose(rates: dict[str, float], margin: float = MARGIN) -> str:
    """fp32 unless a reduced precision ran at least `margin` times as fast; then the fastest of those."""
    base = rates.get("fp32", 0.0)
    best, best_rate = "fp32", base
    for name, rate in rates.items():
        if name != "fp32" and rate >= base * margin and rate > best_rate:
            best, best_rate = name, rate
    return best


def device_key(device: torch.device, backbone: str | None = None, profile: MachineProfile | None = None) -> dict:
    """What a measurement depends on: the machine (device, CPU flags and ISA level, torch) and the backbone."""
    return (profile or machine_profile(device)).key(backbone or REFERENCE)


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


def pinned() -> str | None:
    """The precision TLBENCH_PRECISION_AUTO pins auto to, or None (a bad value is a ConfigError)."""
    value = os.environ.get(PIN_ENV, "").strip()
    if not value:
        return None
    if value not in PINNABLE:
        raise ConfigError(f"{PIN_ENV}={value!r} is not a precision. Use one of {', '.join(PINNABLE)}, or unset it "
                          "to let --precision auto measure.")
    return value


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def forward_rates(forward: Callable[[torch.Tensor], object], example: torch.Tensor, names: list[str],
                  repeats: int = REPEATS, budget_s: float = 20.0) -> dict[str, float]:
    """Images/s of `forward(example)` under autocast to each precision in `names`, in inference mode.

    One warm-up batch per precision (not timed: first-call allocation and kernel selection), then `repeats`
    rounds that time one batch of each precision in turn; each rate is len(example) / the median time.
    A precision whose batches pass `budget_s` stops early (a 13x slower bf16 costs seconds, not minutes)."""
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    device = example.device
    times: dict[str, list[float]] = {n: [] for n in names}
    spent: dict[str, float] = {n: 0.0 for n in names}

    def one(name: str) -> float:
        dtype = dtypes[name]
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            t = time.perf_counter()
            forward(example)
            _sync(device)
            return time.perf_counter() - t

    with torch.inference_mode():
        for name in names:
            spent[name] += one(name)  # warm-up
        for _ in range(repeats):
            for name in names:
                if times[name] and spent[name] > budget_s:
                    continue
                took = one(name)
                times[name].append(took)
                spent[name] += took
    return {n: round(len(example) / max(statistics.median(times[n] or [spent[n]]), 1e-9), 2) for n in names}


def reference_model(device: torch.device) -> nn.Module:
    """A small stand-in for a mobile backbone (conv-BN-ReLU, depthwise and pointwise blocks), in eval mode."""
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    # every layer is made inside the fork: a Conv2d draws its initial weights from the global generator
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        for cin, cout in ((32, 64), (64, 128), (128, 256)):
            layers += block(cin, cout, 2)
        model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return model.to(device=device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # nn.Module.to takes memory_format; its stubs do not say so


def measure_model(model: nn.Module, device: torch.device, size: int, names: list[str],
                  forward: Callable[[torch.Tensor], object] | None = None) -> dict[str, float]:
    """Images/s of `model`'s forward pass (or `forward`) at `size` px for each precision in `names`."""
    batch = 32 if device.type == "cuda" else 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        example = torch.rand(batch, 3, size, size, device="cpu")  # made on the host, then moved: same on any device
    example = example.to(device).contiguous(memory_format=torch.channels_last)
    return forward_rates(forward or model, example, names)


# The measurement itself; tests replace it with a fake that returns rates without running anything.
Measure = Callable[[list[str]], dict[str, float]]


def _isolated(device: torch.device, measure: Measure, names: list[str]) -> dict[str, float]:
    """`measure(names)` under a fork of the CPU's (and the device's) random generators: whatever a measurement
    builds or draws, the job's seeded streams continue as if it never ran (a run that measures and one that
    remembers must train alike)."""
    devices: list[int] = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        return measure(names)


def lookup(device: torch.device, backbone: str | None = None,
           profile: MachineProfile | None = None) -> AutoChoice | None:
    """What `auto` resolves to without measuring: the pin, the only candidate, or the remembered choice; None
    when a measurement would be needed."""
    profile = profile or machine_profile(device)
    key = profile.key(backbone or REFERENCE)
    pin = pinned()
    if pin is not None:
        return AutoChoice(pin, {}, f"pinned by {PIN_ENV}={pin}", key)
    names, why = candidates(profile, force=os.environ.get(FORCE_ENV) == "1")
    if len(names) == 1:
        return AutoChoice(names[0], {}, why, key)
    try:
        data = json.loads(store_path(key).read_text())
        if data.get("key") == key and data.get("choice") in names:
            return AutoChoice(data["choice"], data.get("rates", {}), data.get("reason", ""), key)
    except (OSError, ValueError):
        pass  # not measured yet, or a damaged file: measure again
    return None


def resolve_auto(device: torch.device, backbone: str | None = None, measure: Measure | None = None,
                 profile: MachineProfile | None = None) -> AutoChoice:
    """`auto` on `device` for `backbone`: the pin, the remembered choice, or a new measurement (`measure(names)`
    -> images/s per name; default: the reference network at 224 px), remembered for next time."""
    profile = profile or machine_profile(device)
    found = lookup(device, backbone, profile)
    if found is not None:
        return found
    key = profile.key(backbone or REFERENCE)
    names, why = candidates(profile, force=os.environ.get(FORCE_ENV) == "1")

    def reference(ns: list[str]) -> dict[str, float]:
        return measure_model(reference_model(device), device, 224, ns)

    rates = _isolated(device, measure or reference, names)
    choice = choose(rates)
    best = max(rates, key=lambda n: rates[n])
    reason = (f"measured {', '.join(f'{n} {r:.1f}' for n, r in rates.items())} images/s on {key['device']} "
              f"(median of {REPEATS}): {choice}" + (f" ({best} was not {MARGIN}x fp32)" if best != choice else "")
              + f"; {why}")
    found = AutoChoice(choice, rates, reason, key)
    path = store_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**found.to_dict(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    except OSError:
        pass  # an unwritable cache only means measuring again next run
    return found
