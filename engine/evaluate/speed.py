"""How fast a backbone runs: images/s and latency of its forward pass, measured once per machine and remembered.

The network timed is the fast inference copy feature extraction uses (engine.models.fast: eval mode,
BatchNorm folded, channels_last on CPU and CUDA, float32), on the job's device, at the input size the features
are extracted at: the number says what extraction, prediction and serving of that backbone cost here.

- images_per_s: throughput of batches of `batch` images (the job's batch size, at most max_batch(device));
- latency_ms: the median time of a one-image forward pass (what one request waits).

A short run (a warm-up, then a few timed passes within a time budget) is enough to rank backbones that differ
by 2x or more; it is not a benchmark. Measurements are kept in <cache>/speed.json, keyed by what they depend
on (device and its name, CPU threads, backbone, input size, batch, torch version), so a warm rerun of a
comparison measures nothing.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from engine.core.files import atomic_write_json, read_json
from engine.core.paths import cache_dir
from engine.models.fast import inference_copy

if TYPE_CHECKING:
    from engine.core.jobs import JobContext
    from engine.models.classifier import Classifier

# A CPU's throughput flattens out by 16 images (and a batch of 224 px images takes seconds there); a GPU's
# keeps growing, so its number at 64 is a lower bound.
MAX_BATCH = {"cpu": 16, "cuda": 64, "mps": 32}
BUDGET_S = 1.5  # seconds of timed passes per measurement (after the warm-up), each of throughput and latency
MIN_RUNS, MAX_RUNS = 2, 20
SPEED_VERSION = 1


def device_label(device: torch.device) -> str:
    """What a speed depends on besides the network: the device's kind and name (CPU threads on a CPU)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{torch.cuda.get_device_name(index)}"
    if device.type == "cpu":
        return f"cpu:{torch.get_num_threads()}threads"
    return device.type


def speed_key(backbone: str, size: int, batch: int, device: torch.device) -> str:
    return json.dumps({"v": SPEED_VERSION, "device": device_label(device), "backbone": backbone, "size": size,
                       "batch": batch, "torch": str(torch.__version__)}, sort_keys=True)


class SpeedCache:
    """<cache>/speed.json: {key: {"images_per_s", "latency_ms", "measured"}}. A damaged file is rebuilt."""

    def __init__(self) -> None:
        self.path = cache_dir() / "speed.json"

    def get(self, key: str) -> dict | None:
        try:
            data = read_json(self.path)
            entry = data.get(key) if isinstance(data, dict) else None
        except Exception:  # noqa: BLE001 - a damaged cache only costs a measurement
            return None
        return entry if isinstance(entry, dict) and "images_per_s" in entry else None

    def put(self, key: str, entry: dict) -> None:
        try:
            data = read_json(self.path)
        except Exception:  # noqa: BLE001
            data = {}
        data = data if isinstance(data, dict) else {}
        data[key] = entry
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, data)
        except OSError:
            pass  # a cache we cannot write only costs a measurement next time


def _timed(run: Callable[[], object], sync: Callable[[], None], check: Callable[[], None] | None) -> list[float]:
    """Seconds per call of `run`: one warm-up call, then MIN_RUNS..MAX_RUNS calls within BUDGET_S."""
    run()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MAX_RUNS and (len(times) < MIN_RUNS or time.perf_counter() - start < BUDGET_S):
        if check is not None:
            check()
        t0 = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def max_batch(device: torch.device, batch: int) -> int:
    return max(1, min(batch, MAX_BATCH.get(device.type, 16)))


def measure_speed(model: Classifier, size: int, device: torch.device, batch: int = 64,
                  check: Callable[[], None] | None = None) -> dict:
    """{"images_per_s", "latency_ms", "batch"} of `model`'s feature pass at `size` px on `device`."""
    batch = max_batch(device, batch)
    fast = inference_copy(model, device, size)
    dtype = next(fast.parameters()).dtype
    # constant input: a convolution's time does not depend on the values, and no random stream is touched
    many = torch.full((batch, 3, size, size), 0.5, device=device, dtype=dtype)
    one = torch.full((1, 3, size, size), 0.5, device=device, dtype=dtype)
    if device.type in ("cpu", "cuda"):
        many = many.contiguous(memory_format=torch.channels_last)
        one = one.contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    with torch.inference_mode():
        throughput = _timed(lambda: fast.features(many), sync, check)
        latency = _timed(lambda: fast.features(one), sync, check)
    return {"images_per_s": round(batch / statistics.median(throughput), 2),
            "latency_ms": round(statistics.median(latency) * 1000, 3), "batch": batch}


def backbone_speed(name: str, size: int, device: torch.device, model: Callable[[], Classifier],
                   batch: int = 64, ctx: JobContext | None = None) -> tuple[dict, bool]:
    """The speed of backbone `name` at `size` px on `device`, from the cache or measured on `model()` (called
    only on a miss). Returns (the entry, whether it came from the cache)."""
    batch = max_batch(device, batch)
    key = speed_key(name, size, batch, device)
    cache = SpeedCache()
    hit = cache.get(key)
    if hit is not None:
        return hit, True
    if ctx is not None:
        ctx.log(f"timing {name} at {size} px on {device_label(device)} (batch {batch}, then one image)")
    entry = measure_speed(model(), size, device, batch, ctx.check if ctx is not None else None)
    entry["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    cache.put(key, entry)
    return entry, False
