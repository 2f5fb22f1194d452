"""What a device is, as far as choosing a precision goes: a `MachineProfile`.

Users run tlbench on GPU boxes (an AVX-512 or AMX host CPU, an sm_70..sm_90 GPU), laptops, Graviton servers and
Macs; the machine a test runs on is one of many. The profile is plain data, so the decisions made from it
(engine.runtime.precision_auto.candidates) are tested against simulated profiles of every kind, and
`engine.runtime.devices.machine_profile(device)` is the one place that reads the real machine. No torch here
(the spec layer): `cpu_info` reads /proc/cpuinfo or sysctl.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Instruction-set flags that say whether bf16 can be fast on a CPU (x86 /proc/cpuinfo "flags", aarch64
# "Features"; AVX-512F alone: oneDNN's bf16 path uses it, measured 1.3x fp32 on one Xeon), and the ones worth
# recording beside them.
BF16_FLAGS = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "bf16"})
RECORDED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile", "amx_bf16",
                  "amx_fp16", "asimd", "bf16", "sve")


@dataclass(frozen=True)
class MachineProfile:
    device_type: str  # "cpu" | "cuda" | "mps"
    device: str  # the GPU's name, or the CPU's model name
    arch: str = ""  # platform.machine(): x86_64, aarch64, arm64
    cpu_flags: tuple[str, ...] = ()  # the RECORDED_FLAGS the CPU has
    cpu_capability: str = ""  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "DEFAULT" …
    cuda_capability: tuple[int, int] | None = None
    torch: str = ""

    @property
    def cpu_bf16_capable(self) -> bool:
        return bool(BF16_FLAGS & set(self.cpu_flags)) or self.cpu_capability.startswith("AVX512")

    @property
    def cuda_sm(self) -> str:
        return "".join(map(str, self.cuda_capability)) if self.cuda_capability else "?"

    def key(self, backbone: str) -> dict:
        """What a remembered measurement depends on (engine.runtime.precision_auto's cache key)."""
        key = {"device_type": self.device_type, "device": self.device, "cpu_flags": list(self.cpu_flags),
               "cpu_capability": self.cpu_capability, "torch": self.torch, "backbone": backbone}
        if self.cuda_capability is not None:
            key["cuda_capability"] = list(self.cuda_capability)
        return key


def cpu_info() -> tuple[str, list[str]]:
    """(the CPU's model name, its flags that matter for reduced precision) from /proc/cpuinfo, where there is one
    (Linux), or sysctl (macOS on Apple silicon: FEAT_BF16 from the M2 on)."""
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
    if not text and platform.system() == "Darwin" and platform.machine() == "arm64":
        flags = {"asimd"} | ({"bf16"} if _sysctl("hw.optional.arm.FEAT_BF16") == "1" else set())
        name = _sysctl("machdep.cpu.brand_string") or name
    return name, [f for f in RECORDED_FLAGS if f in flags]


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""

