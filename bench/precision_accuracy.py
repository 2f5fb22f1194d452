"""What bf16 does to results: the same runs in fp32 and in bf16, on the shared photo sets, several draws.

    .venv/bin/python bench/precision_accuracy.py [--seeds 0 1 2] [--modes probe head full] [--quick]

For each dataset (cats-dogs-dev; cat-breeds-dev; 20 breeds of dog-breeds-dev with 8+ photos each), each mode
(probe: bf16 extraction, the head in fp32 on its features; head: the backbone frozen, trained on augmented
images; full: fastai's fine_tune) and each seed (a seed draws another train/validation split), the product's
own `train` runs once with --precision fp32 and once with --precision bf16, everything else equal. Reported:
the validation accuracy of each, and bf16 - fp32 per run, with the mean and the spread per mode.

On a CPU without bf16 instructions (this project's AVX2 machines) bf16 autocast is emulated, 10x+ slower, but
computes the same thing: operands rounded to bf16, products accumulated in fp32, as AVX-512 BF16 and AMX do
natively, so the accuracies hold for those machines (the speed does not: that is bench/precision.py's).
Sizes are small to keep the emulated runs affordable (probe 224 px, head 96 px, full 64 px). Writes
bench/results/precision_accuracy.json.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = next((p / "shared" / "data" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
              ROOT.parent / "shared" / "data")

import torch  # noqa: E402

from engine.core.jobs import run_job  # noqa: E402
from engine.runtime.devices import machine_profile  # noqa: E402
from engine.train.config import TrainConfig  # noqa: E402
from engine.train.job import train  # noqa: E402

MODES = {
    "probe": {"mode": "probe", "img_size": 224, "epochs": 30},
    "head": {"mode": "head", "img_size": 96, "epochs": 3},
    "full": {"mode": "full", "img_size": 64, "epochs": 3, "freeze_epochs": 1},
}


def dog_subset(dest: Path, breeds: int = 20, least: int = 8) -> Path:
    """dest/<breed>/ links to the first `breeds` breeds of dog-breeds-dev with at least `least` photos."""
    src = SHARED / "dog-breeds-dev"
    picked = [d for d in sorted(src.iterdir()) if d.is_dir() and len(list(d.iterdir())) >= least][:breeds]
    for d in picked:
        (dest / d.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(d.iterdir()):
            link = dest / d.name / f.name
            if not link.exists():
                link.symlink_to(f)
    return dest


def run(dataset: Path, mode: str, precision: str, seed: int) -> dict:
    cfg = TrainConfig(dataset=str(dataset), precision=precision, seed=seed, batch_size=16, **MODES[mode])
    t = time.perf_counter()
    final = run_job("train", lambda ctx: train(cfg, ctx), lambda e: None)
    if not hasattr(final, "result") or final.reason != "completed":
        raise SystemExit(f"{dataset.name} {mode} {precision} seed {seed}: {final}")
    r = final.result
    return {"val_acc": r["best_val_acc"], "last_val_acc": r["val_acc"], "seconds": round(time.perf_counter() - t, 1),
            "precision": json.loads(Path(r["run_dir"], "config.json").read_text())["precision_resolved"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="*", default=list(MODES))
    ap.add_argument("--datasets", nargs="*", default=["cats-dogs-dev", "cat-breeds-dev", "dog-breeds-20"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "precision_accuracy.json"))
    ap.add_argument("--rows", default=str(ROOT / "bench" / "results" / "precision_accuracy_rows.jsonl"),
                    help="one JSON line per finished pair, appended as it goes; pairs already there are not rerun, "
                         "so an interrupted bench continues where it stopped")
    args = ap.parse_args()
    rows_file = Path(args.rows)
    done = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()] \
        if rows_file.exists() else []
    work = Path(tempfile.mkdtemp(prefix="tlbench-bf16-"))
    os.environ.update(TLBENCH_CACHE=str(work / "cache"), TLBENCH_RUNS=str(work / "runs"), TLBENCH_OFFLINE="1")
    roots = {"cats-dogs-dev": SHARED / "cats-dogs-dev", "cat-breeds-dev": SHARED / "cat-breeds-dev",
             "dog-breeds-20": dog_subset(work / "dog-breeds-20")}
    rows = list(done)
    for name in args.datasets:
        for mode in args.modes:
            for seed in args.seeds:
                if any((r["dataset"], r["mode"], r["seed"]) == (name, mode, seed) for r in done):
                    continue
                a, b = run(roots[name], mode, "fp32", seed), run(roots[name], mode, "bf16", seed)
                row = {"dataset": name, "mode": mode, "seed": seed, "fp32": a["val_acc"], "bf16": b["val_acc"],
                       "delta": round(b["val_acc"] - a["val_acc"], 4), "fp32_seconds": a["seconds"],
                       "bf16_seconds": b["seconds"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
                with rows_file.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    summary = {}
    for mode in MODES:
        deltas = [r["delta"] for r in rows if r["mode"] == mode]
        if deltas:
            summary[mode] = {"mean_delta": round(statistics.mean(deltas), 4), "min_delta": min(deltas),
                             "max_delta": max(deltas), "runs": len(deltas)}
    profile = machine_profile(torch.device("cpu"))
    out = {"date": time.strftime("%Y-%m-%d"), "cpu": profile.device, "cpu_flags": list(profile.cpu_flags),
           "cpu_capability": profile.cpu_capability, "torch": torch.__version__, "modes": MODES,
           "backbone": "efficientnet_lite0", "summary": summary, "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("| mode | runs | bf16 - fp32 (mean) | min | max |")
    print("|---|---|---|---|---|")
    for mode, s in summary.items():
        print(f"| {mode} | {s['runs']} | {s['mean_delta']:+.4f} | {s['min_delta']:+.4f} | {s['max_delta']:+.4f} |")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
