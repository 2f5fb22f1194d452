"""Is the leaderboard's speed the backbone's? engine.evaluate.speed.measure_speed against a plain-PyTorch timing
loop on the same network, in the same process, in turns (issue 24 item 4).

    .venv/bin/python bench/speed_check.py [--backbones efficientnet_lite0,efficientnet_lite2] [--size 224]

The plain loop: the torchvision-style model in eval mode, `torch.inference_mode()`, 5 warm-up calls, then 20
timed calls of one image and 20 of a batch (--runs), the median of each. tlbench's number goes through measure_speed
(its inference copy: BatchNorm folded, channels_last), the function `tlbench compare` and the workbench's
leaderboard both call. Reported per backbone: both latencies and throughputs, their ratio (tlbench / plain
for latency; near 1, or below since the copy is faster), the machine's load per core and whether tlbench
marked its measurement busy. Then the same measurement in a thread at nice +10 next to a busy process, the
condition the workbench's 1,514 ms came from. Writes bench/results/speed_check.json.
"""

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.evaluate.speed import machine_load, max_batch, measure_speed  # noqa: E402
from engine.features.candidates import build_backbone  # noqa: E402


def plain(model, size: int, batch: int, runs: int = 20) -> dict:
    model = model.eval()
    many, one = torch.full((batch, 3, size, size), 0.5), torch.full((1, 3, size, size), 0.5)

    def median_of(x) -> float:
        for _ in range(5):
            model.features(x)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            model.features(x)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    with torch.inference_mode():
        return {"images_per_s": round(batch / median_of(many), 2), "latency_ms": round(median_of(one) * 1e3, 3)}


def niced_next_to_a_busy_process(model, size: int, batch: int) -> dict:
    """The old condition: the timing thread at nice +10 while another process keeps a core busy."""
    out: dict = {}

    def body():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + 10)
        except (AttributeError, OSError):
            pass
        out.update(measure_speed(model, size, torch.device("cpu"), batch))

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        t = threading.Thread(target=body)
        t.start()
        t.join()
    finally:
        hog.kill()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--runs", type=int, default=20, help="timed calls of the plain loop")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a timeout still ends the busy process (finally)
    batch = max_batch(torch.device("cpu"), args.batch)
    rows = []
    for name in args.backbones.split(","):
        model = build_backbone(name, "random")  # the speed does not depend on the weights' values
        base = plain(model, args.size, batch, args.runs)
        ours = measure_speed(model, args.size, torch.device("cpu"), batch)
        niced = niced_next_to_a_busy_process(model, args.size, batch)
        row = {"backbone": name, "plain": base, "tlbench": {k: ours[k] for k in
                                                            ("images_per_s", "latency_ms", "busy", "load",
                                                             "dropped", "spread")},
               "latency_ratio": round(ours["latency_ms"] / base["latency_ms"], 3),
               "throughput_ratio": round(ours["images_per_s"] / base["images_per_s"], 3),
               "niced_next_to_busy": {"latency_ms": niced["latency_ms"], "busy": niced["busy"],
                                      "ratio_to_plain": round(niced["latency_ms"] / base["latency_ms"], 2)}}
        rows.append(row)
        print(json.dumps(row))
    result = {"size": args.size, "batch": batch, "threads": torch.get_num_threads(), "load_per_core": machine_load(),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows}
    out = ROOT / "bench" / "results" / "speed_check.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
