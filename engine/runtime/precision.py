"""Numeric precision of a job's forward passes: which autocast dtype, and whether fp16 needs a GradScaler.

One place for every job (extraction, fine-tuning, attacks, dreams), so a device gets the same choice
everywhere. `auto` is measured, never guessed (engine.runtime.precision_auto): on CPUs bf16 autocast was 1.3x
faster on one machine (AVX-512) and 13x slower on another (AVX2 only), so `auto` times the precisions the
device can run safely on a few batches, once per device and backbone, and keeps a reduced one only where it
was faster; fp16 never on a CPU. The names (PRECISIONS) are in the spec layer (engine.core.choices).
"""

from __future__ import annotations

import torch

from engine.core.choices import PRECISIONS
from engine.core.errors import ConfigError, choice_error
from engine.runtime.precision_auto import Measure, lookup, resolve_auto


def dtype_of(name: str) -> torch.dtype | None:
    """The autocast dtype a precision name stands for (None: fp32)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def resolve_precision(device: torch.device, precision: str = "auto", *, backbone: str | None = None,
                      measure: Measure | None = None) -> tuple[str, str]:
    """(the precision name `precision` stands for on `device`, why): what a run records before its first step.

    `auto` is the fastest precision measured on this device (engine.runtime.precision_auto, remembered in the
    cache): for `backbone` with `measure(names) -> images/s per name` when the caller has the model at hand,
    else for the reference network."""
    if precision not in PRECISIONS:
        raise choice_error("precision", precision, PRECISIONS)
    kind = device.type
    if precision == "fp32":
        return "fp32", "asked for (--precision fp32)"
    if precision == "auto":
        found = resolve_auto(device, backbone, measure)
        return found.choice, "auto: " + found.reason
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--precision {precision} is not available on {kind}: use --precision fp32.")
    return precision, f"asked for (--precision {precision})"


def autocast_dtype(device: torch.device, precision: str = "auto", *, backbone: str | None = None,
                   measure: Measure | None = None) -> torch.dtype | None:
    """The dtype to autocast to on `device`, or None for plain fp32 (see `resolve_precision`)."""
    return dtype_of(resolve_precision(device, precision, backbone=backbone, measure=measure)[0])


def recorded_dtype(precision_resolved: str | None) -> torch.dtype | None:
    """The autocast dtype of a precision a run recorded (None, or a run from before it was recorded: fp32)."""
    name = precision_resolved or "fp32"
    if name not in PRECISIONS or name == "auto":
        raise ConfigError(f"The run records precision {name!r}, which is not one of fp32, bf16, fp16: its "
                          "config.json is damaged. Pass --precision fp32 to use it anyway.")
    return dtype_of(name)


def known_choice(device: torch.device, precision: str = "auto", backbone: str | None = None) -> str | None:
    """The precision name `precision` resolves to on `device` without measuring anything; None when `auto` would
    have to measure `backbone` first (nothing can be cached under its choice yet)."""
    if precision != "auto":
        return precision
    found = lookup(device, backbone)
    return found.choice if found is not None else None


def needs_grad_scaler(device: torch.device, dtype: torch.dtype | None) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return dtype == torch.float16 and device.type in ("cuda", "mps")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype` on `device`'s type, disabled when dtype is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def training_precision(precision: str = "auto", amp: bool = True) -> str:
    """The precision a training config asks for. `--no-amp` (amp False) predates --precision and means fp32;
    configs written before --precision existed carry only `amp` and keep meaning what they meant."""
    return precision if amp else "fp32"


def use_channels_last(device: torch.device, asked: str = "auto") -> bool:
    """Whether a training model on `device` runs in channels_last: "on", "off", or "auto" (CUDA and CPU).

    On CUDA it is what tensor cores want under autocast. On this project's 2-core x86 CPU a training step
    (forward, backward, AdamW) ran 1.49x as fast for EfficientNet-Lite0, 1.16x for ResNet-50 and 1.17x for
    MobileNetV3 at 96 px (bench/train_throughput.py --compare-memory-formats; bench/results/
    train_channels_last_cpu.json), as engine.features.cache found for extraction. MPS stays contiguous unless asked
    (not measured; its channels_last kernels have lagged)."""
    if asked == "auto":
        return device.type in ("cuda", "cpu")
    return asked == "on"
