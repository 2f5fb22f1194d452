"""`tlbench compare` benchmark: a cold run (empty feature and speed caches), then the same command warm.

    .venv/bin/python bench/compare.py [DATASET] [--backbones a,b,c] [--folds 5]

Each run is a whole process (`python -m tui.main compare … --json`), as a user runs it. Reported: each
candidate's cross-validated accuracy ± std, images/s and latency; the wall time of both runs and the job's own
time (the JSON's "seconds": the work after start-up); warm / cold for both. The import floor (the time a process
takes to import the engine, torch included, before any work) is measured too: a warm run cannot go below it.
Writes bench/results/compare.json and prints a Markdown table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# beside the checkout (../shared/data), else where this project's machines keep it
DEFAULT_DATA = next((p for p in (ROOT.parent / "shared" / "data" / "cats-dogs-dev",
                                 Path("/work/shared/data/cats-dogs-dev")) if p.is_dir()),
                    ROOT.parent / "shared" / "data" / "cats-dogs-dev")


def run(cmd: list[str], env: dict) -> tuple[dict, float]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout), wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_DATA))
    ap.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.dataset).is_dir():
        sys.exit(f"{args.dataset}: no such dataset folder")

    tmp = Path(tempfile.mkdtemp(prefix="tlbench-bench-compare-"))
    env = {**os.environ, "TLBENCH_CACHE": str(tmp / "cache"), "TLBENCH_RUNS": str(tmp / "runs"),
           "TLBENCH_OFFLINE": "1"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import engine.features.compare"], check=True, cwd=ROOT, env=env)
    import_floor = time.perf_counter() - t

    cmd = [sys.executable, "-m", "tui.main", "compare", args.dataset, "--backbones", args.backbones,
           "--folds", str(args.folds), "--json"]
    cold, cold_wall = run(cmd, env)
    warm, warm_wall = run(cmd, env)
    assert [r["accuracy"] for r in cold["results"]] == [r["accuracy"] for r in warm["results"]], \
        "a warm rerun must give the same numbers"

    result = {
        "dataset": args.dataset,
        "images": cold["images"],
        "folds": cold["folds"],
        "backbones": args.backbones,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "import_floor_s": round(import_floor, 2),
        "cold": {"wall_s": round(cold_wall, 2), "job_s": cold["seconds"], "feature_cache": cold["feature_cache"]},
        "warm": {"wall_s": round(warm_wall, 2), "job_s": warm["seconds"], "feature_cache": warm["feature_cache"],
                 "speed_cache": sorted({r.get("speed_cache") for r in warm["results"]})},
        "warm_over_cold_wall": round(warm_wall / cold_wall, 4),
        "warm_over_cold_job": round(warm["seconds"] / cold["seconds"], 4),
        "results": [{k: r.get(k) for k in ("backbone", "accuracy", "accuracy_std", "top5", "images_per_s",
                                           "latency_ms", "img_size", "params", "weights", "pareto", "error")}
                    for r in cold["results"]],
        "best": cold["best"],
        "run_dirs": [cold["run_dir"], warm["run_dir"]],
    }
    out = ROOT / "bench" / "results" / "compare.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"## tlbench compare on {Path(args.dataset).name} ({result['images']} images, {result['folds']}-fold)\n")
    print("| backbone | accuracy ± std | top-5 | images/s | latency ms | input | Pareto |")
    print("|---|---|---|---|---|---|---|")
    for r in result["results"]:
        if r["error"]:
            print(f"| {r['backbone']} | error: {r['error'][:60]} | | | | | |")
            continue
        print(f"| {r['backbone']} | {r['accuracy']:.4f} ± {r['accuracy_std']:.4f} | {r['top5']:.4f} | "
              f"{r['images_per_s']:.1f} | {r['latency_ms']:.1f} | {r['img_size']} | {'*' if r['pareto'] else ''} |")
    print(f"\n| run | wall s | job s |\n|---|---|---|\n| cold | {cold_wall:.1f} | {cold['seconds']:.1f} |\n"
          f"| warm | {warm_wall:.1f} | {warm['seconds']:.2f} |\n"
          f"| warm / cold | {result['warm_over_cold_wall']:.1%} | {result['warm_over_cold_job']:.1%} |\n")
    print(f"import floor (a process importing the engine and torch, no work): {import_floor:.1f} s; "
          f"load average at the end {result['machine']['load_average_1m_at_end']}")
    print(f"written {out}")


if __name__ == "__main__":
    main()
