"""Simulated machines for the tests of `--precision auto` (engine.runtime.machine.MachineProfile): every kind a
user runs tlbench on, with what auto measures there and what it chooses when the reduced precision is faster."""

from __future__ import annotations

import pytest

import engine.runtime.precision_auto as pa
from engine.runtime.machine import MachineProfile


def x86(name: str, capability: str, *flags: str) -> MachineProfile:
    return MachineProfile("cpu", name, "x86_64", tuple(flags), capability, None, "2.x")


def gpu(name: str, sm: tuple[int, int]) -> MachineProfile:
    return MachineProfile("cuda", name, "x86_64", ("avx2",), "AVX2", sm, "2.x")


# name -> (profile, the candidates auto measures, the choice when the reduced precision ran 1.4x fp32)
PROFILES = {
    "avx2": (x86("AMD EPYC (AVX2 only)", "AVX2", "avx2"), ["fp32"], "fp32"),
    "avx512": (x86("Intel Xeon Skylake", "AVX512", "avx2", "avx512f"), ["fp32", "bf16"], "bf16"),
    "avx512_bf16": (x86("AMD EPYC Genoa", "AVX512", "avx2", "avx512f", "avx512_bf16"), ["fp32", "bf16"], "bf16"),
    "amx": (x86("Intel Xeon Sapphire Rapids", "AVX512", "avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"),
            ["fp32", "bf16"], "bf16"),
    "aarch64_bf16": (MachineProfile("cpu", "Graviton3", "aarch64", ("asimd", "bf16", "sve"), "DEFAULT", None, "2.x"),
                     ["fp32", "bf16"], "bf16"),
    "aarch64": (MachineProfile("cpu", "Graviton2", "aarch64", ("asimd",), "DEFAULT", None, "2.x"), ["fp32"], "fp32"),
    "mps": (MachineProfile("mps", "mps", "arm64", ("asimd", "bf16"), "DEFAULT", None, "2.x"), ["fp32"], "fp32"),
    "cuda_sm70": (gpu("Tesla V100", (7, 0)), ["fp32", "fp16"], "fp16"),
    "cuda_sm75": (gpu("Tesla T4", (7, 5)), ["fp32", "fp16"], "fp16"),
    "cuda_sm80": (gpu("NVIDIA A100", (8, 0)), ["fp32", "bf16"], "bf16"),
    "cuda_sm90": (gpu("NVIDIA H100", (9, 0)), ["fp32", "bf16"], "bf16"),
}


class FakeMeasure:
    """Rates without running anything; counts its calls (each call = one measurement on a real device)."""

    def __init__(self, **rates: float):
        self.rates, self.calls = rates, []

    def __call__(self, names):
        self.calls.append(list(names))
        return {n: self.rates[n] for n in names}


def become(monkeypatch: pytest.MonkeyPatch, which: str | MachineProfile) -> MachineProfile:
    """This process pretends to run on `which` (a PROFILES name, or a profile); auto is no longer pinned."""
    monkeypatch.delenv(pa.PIN_ENV, raising=False)
    profile = PROFILES[which][0] if isinstance(which, str) else which
    monkeypatch.setattr(pa, "machine_profile", lambda device: profile)
    return profile
