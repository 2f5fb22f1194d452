"""How fast a backbone runs: images/s and latency of its forward pass, measured once per machine and remembered.

The network timed is the fast inference copy feature extraction uses (engine.models.fast: eval mode,
BatchNorm folded, channels_last on CPU and CUDA, float32), on the job's device, at the input size the features
are extracted at: the number says what extraction, prediction and serving of that backbone cost here.

- images_per_s: throughput of batches of `batch` images (the job's batch size, at most max_batch(device));
- latency_ms: the median time of a one-image forward pass (what one request waits).

How it is timed (the workbench and `tlbench compare` both call `backbone_speed`, with the same settings):
warm-up calls first (the first calls pay for allocator growth and oneDNN/cuDNN kernel choice), then at least
MIN_RUNS timed calls within a time budget; calls outside Tukey's fences (1.5 IQR beyond the quartiles: a
moment when another process took the CPU) are dropped and the median of the rest is the number. Each entry
records when it was measured, on which device, how many calls were kept and dropped, the spread, the load of
the machine and the measuring thread's nice value: a measurement made on a busy machine is marked `busy`
(shown as such, not trusted as a ranking). Issue 24 found the workbench's numbers 100x off the headless ones:
its jobs run at nice +10 (tui.jobs), and a niced thread whose OpenMP team waits at a barrier on every layer
loses the CPU to anything else running; one warm-up and a median of two calls kept the result for good.

Measurements are kept in <cache>/speed.json, keyed by what they depend on (device and its name, CPU threads,
backbone, input size, batch, torch version), so a warm rerun of a comparison measures nothing; `remeasure`
(`tlbench compare --remeasure`, `r` in the leaderboard) times again and replaces the entry.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
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
WARMUP_RUNS = 3
MIN_RUNS, MAX_RUNS = 5, 30
SPEED_VERSION = 2  # 2: warm-up, outliers dropped, date/device/load recorded (version 1's numbers are not reused)
BUSY_LOAD = 1.0  # load average per core above which a measurement is marked busy
OLD_DAYS = 30  # a cached speed older than this is shown as old (drivers, torch and the machine change)


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
    """Seconds per call of `run`: WARMUP_RUNS untimed calls, then MIN_RUNS..MAX_RUNS calls within BUDGET_S."""
    for _ in range(WARMUP_RUNS):
        if check is not None:
            check()
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


def robust_median(times: list[float]) -> tuple[float, int, float]:
    """(median of the calls inside Tukey's fences, how many were dropped, spread: IQR / median)."""
    ordered = sorted(times)
    if len(ordered) < 4:
        return statistics.median(ordered), 0, 0.0
    q1, _, q3 = statistics.quantiles(ordered, n=4)
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    kept = [t for t in ordered if low <= t <= high] or ordered
    median = statistics.median(kept)
    return median, len(ordered) - len(kept), round((q3 - q1) / median, 3) if median > 0 else 0.0


def machine_load() -> float | None:
    """The 1-minute load average per core (None where the OS does not say)."""
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 2)
    except (AttributeError, OSError):
        return None


def thread_nice() -> int | None:
    """The calling thread's nice value on Linux (the workbench's jobs run niced), else the process's."""
    try:
        who = threading.get_native_id() if sys.platform.startswith("linux") else 0
        return os.getpriority(os.PRIO_PROCESS, who)
    except (AttributeError, OSError):
        return None


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

    load_before = machine_load()
    with torch.inference_mode():
        throughput = _timed(lambda: fast.features(many), sync, check)
        latency = _timed(lambda: fast.features(one), sync, check)
    loads = [x for x in (load_before, machine_load()) if x is not None]
    batch_s, batch_dropped, batch_spread = robust_median(throughput)
    one_s, one_dropped, one_spread = robust_median(latency)
    load = max(loads) if loads else None
    return {"images_per_s": round(batch / batch_s, 2), "latency_ms": round(one_s * 1000, 3), "batch": batch,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": device_label(device),
            "runs": [len(throughput), len(latency)], "dropped": [batch_dropped, one_dropped],
            "spread": max(batch_spread, one_spread), "load": load, "nice": thread_nice(),
            "busy": load is not None and load > BUSY_LOAD}


def speed_age(entry: dict, now: float | None = None) -> str:
    """How a cached speed is shown next to its number: "" when fresh; "busy" when measured on a busy machine;
    "12 d old"; "old" when it does not say when it was measured."""
    if entry.get("busy"):
        return "busy"
    try:
        measured = time.mktime(time.strptime(entry["measured"][:19], "%Y-%m-%dT%H:%M:%S"))
    except (KeyError, TypeError, ValueError):
        return "old"
    days = ((now if now is not None else time.time()) - measured) / 86400
    return f"{days:.0f} d old" if days >= OLD_DAYS else ""


def backbone_speed(name: str, size: int, device: torch.device, model: Callable[[], Classifier],
                   batch: int = 64, ctx: JobContext | None = None, remeasure: bool = False) -> tuple[dict, bool]:
    """The speed of backbone `name` at `size` px on `device`, from the cache or measured on `model()` (called
    only on a miss, or always with `remeasure`). Returns (the entry, whether it came from the cache)."""
    batch = max_batch(device, batch)
    key = speed_key(name, size, batch, device)
    cache = SpeedCache()
    hit = None if remeasure else cache.get(key)
    if hit is not None:
        return hit, True
    if ctx is not None:
        ctx.log(f"timing {name} at {size} px on {device_label(device)} (batch {batch}, then one image)")
    entry = measure_speed(model(), size, device, batch, ctx.check if ctx is not None else None)
    if ctx is not None and entry["busy"]:
        ctx.log(f"{name}: timed on a busy machine (load {entry['load']} per core): `r` or --remeasure times "
                "it again when the machine is quiet", "warning")
    cache.put(key, entry)
    return entry, False
