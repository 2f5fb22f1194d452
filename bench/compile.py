"""torch.compile for fine-tuning: training steps/s with and without `--compile`, in one run.

    .venv/bin/python bench/compile.py [--backbone efficientnet_lite0] [--img-size 64] [--batch 32] [--steps 10]
                                      [--device cpu|cuda]

The step is tlbench's (engine.train.loop.train_step: autocast per engine.runtime.precision's auto choice,
channels_last, AdamW, every parameter trained) on random images with random weights. The compiled model is
compiled in place as `--compile` does (nn.Module.compile); its first steps (the compilation) are timed
apart. Writes bench/results/compile_<device>.json: whether compiling paid, and after how many steps.
"""

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from engine.models.build import build_classifier  # noqa: E402
from engine.runtime.precision import autocast, autocast_dtype, precision_name  # noqa: E402


def steps_per_s(model, device, dtype, x, y, steps, warmup):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        with autocast(device, dtype):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    t = time.perf_counter()
    for _ in range(warmup):
        step()
    first = time.perf_counter() - t
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    return first, 1 / times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="result file (default bench/results/<name>_<device>.json)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    base, _ = build_classifier(args.backbone, 10, weights="random")
    base = base.to(device, memory_format=torch.channels_last).train()
    dtype = autocast_dtype(device, "auto")
    x = torch.rand(args.batch, 3, args.img_size, args.img_size, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eager_first, eager = steps_per_s(copy.deepcopy(base), device, dtype, x, y, args.steps, 2)
    compiled_model = copy.deepcopy(base)
    compiled_model.compile()
    compile_first, compiled = steps_per_s(compiled_model, device, dtype, x, y, args.steps, 2)
    gain = 1 / eager - 1 / compiled  # seconds saved per step
    overhead = compile_first - eager_first
    out = {"device": args.device, "backbone": args.backbone, "img_size": args.img_size, "batch": args.batch,
           "precision": precision_name(dtype), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
           "eager_steps_per_s": round(eager, 3), "compiled_steps_per_s": round(compiled, 3),
           "speedup": round(compiled / eager, 3), "compile_overhead_s": round(overhead, 1),
           "steps_to_break_even": round(overhead / gain) if gain > 0 else None}
    (Path(args.out) if args.out else ROOT / "bench" / "results" / f"compile_{device.type}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
