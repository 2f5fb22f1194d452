"""Audit benchmark: speed with warm features, peak memory at PetImages size, and recall of planted mistakes.

    .venv/bin/python bench/audit.py [--part speed|memory|recall|all] [--big 25000]

speed   2,000 generated photos (random 64 px crops of four skimage photos, one class each): a cold audit
        (extracts the features), then the warm audit timed — wall time of `tlbench audit --json` in a fresh
        process (so it includes Python and torch start-up) and the job's own seconds.
memory  --big (25,000) generated 32 px photo crops in 4 classes: `tlbench audit` in a subprocess, its peak RSS
        (ru_maxrss of the child) and wall time, cold.
recall  a copy of ../shared/data/cats-dogs-dev with 5% of its labels flipped (files moved to the other class)
        and 6 planted near-duplicates (a photo re-encoded as JPEG q70 and resized to 75%, next to the
        original): recall of the flips in the top-k label suspects (k = 2 x planted) and of the planted pairs
        among the duplicate groups.

Every audit runs with its own TLBENCH_CACHE and TLBENCH_RUNS under a temporary folder. Writes
bench/results/audit.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CATS_DOGS = Path(os.environ.get("TLBENCH_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cats-dogs-dev"
if not CATS_DOGS.is_dir():
    CATS_DOGS = Path("/work/shared/data/cats-dogs-dev")


def audit(dataset: Path, env: dict, *extra: str) -> tuple[dict, float, int]:
    """(the audit's JSON, wall seconds, peak RSS in MB of the audit process)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tui.main", "audit", str(dataset), "--json", *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    out, err = proc.communicate()
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the maximum over all children so far)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"audit failed ({proc.returncode}):\n{err[-3000:]}")
    rss = _child_maxrss_mb()
    return json.loads(out), wall, rss


def _child_maxrss_mb() -> int:
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KB on Linux): run the big one on its own
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024


def photo_classes(root: Path, n: int, size: int) -> Path:
    from skimage import data

    sources = {"coffee": data.coffee(), "rocket": data.rocket(), "astronaut": data.astronaut(),
               "chelsea": data.chelsea()}
    rng = np.random.default_rng(0)
    for k in range(n):
        name = list(sources)[k % len(sources)]
        src = sources[name]
        side = int(rng.integers(min(src.shape[:2]) // 5, min(src.shape[:2]) // 2))
        y, x = rng.integers(0, src.shape[0] - side), rng.integers(0, src.shape[1] - side)
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(src[y:y + side, x:x + side]).resize((size, size)).save(root / name / f"{k:06d}.png")
    return root


def part_speed(tmp: Path) -> dict:
    data = photo_classes(tmp / "speed2000", 2000, 64)
    env = {"TLBENCH_CACHE": str(tmp / "cache-speed"), "TLBENCH_RUNS": str(tmp / "runs")}
    cold, cold_wall, _ = audit(data, env)
    warm, warm_wall, _ = audit(data, env)
    return {"images": warm["images"], "cold_wall_s": round(cold_wall, 2), "cold_job_s": cold["seconds"],
            "warm_wall_s": round(warm_wall, 2), "warm_job_s": warm["seconds"],
            "feature_cache": warm["feature_cache"]}


def part_memory(tmp: Path, n: int) -> dict:
    data = photo_classes(tmp / f"big{n}", n, 32)
    env = {"TLBENCH_CACHE": str(tmp / "cache-big"), "TLBENCH_RUNS": str(tmp / "runs")}
    result, wall, rss = audit(data, env)
    return {"images": result["images"], "wall_s": round(wall, 2), "job_s": result["seconds"], "peak_rss_mb": rss,
            "duplicate_groups": len(result["duplicates"])}


def part_recall(tmp: Path) -> dict:
    data = tmp / "cats-dogs-planted"
    shutil.copytree(CATS_DOGS, data)
    rng = random.Random(0)
    files = sorted(p for p in data.rglob("*") if p.is_file())
    n_flip = round(0.05 * len(files))
    flipped = []
    for p in rng.sample(files, n_flip):
        other = data / ("dogs" if p.parent.name == "cats" else "cats")
        dest = other / f"flipped-{p.name}"
        p.rename(dest)
        flipped.append(str(dest))
    rest = sorted(set(files) - {Path(f) for f in flipped} - {p for p in files if not p.exists()})
    pairs = []
    for p in rng.sample([p for p in rest if p.exists()], 6):
        img = Image.open(p).convert("RGB")
        dup = p.with_name(f"dup-{p.stem}.jpg")
        img.resize((int(img.width * 0.75), int(img.height * 0.75))).save(dup, quality=70)
        pairs.append({str(p), str(dup)})
    env = {"TLBENCH_CACHE": str(tmp / "cache-recall"), "TLBENCH_RUNS": str(tmp / "runs")}
    result, wall, _ = audit(data, env)
    k = 2 * n_flip
    top = {i["path"] for i in result["label_issues"][:k]}
    found_flips = sum(f in top for f in flipped)
    groups = [set(d["paths"]) for d in result["duplicates"]]
    found_pairs = sum(any(pair <= g for g in groups) for pair in pairs)
    return {"images": result["images"], "flipped": n_flip, "k": k, "suspects_listed": len(result["label_issues"]),
            "flip_recall_at_k": round(found_flips / n_flip, 3), "planted_pairs": len(pairs),
            "pair_recall": round(found_pairs / len(pairs), 3), "duplicate_groups": len(groups),
            "other_groups": len(groups) - found_pairs, "wall_s": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["speed", "memory", "recall", "all"], default="all")
    ap.add_argument("--big", type=int, default=25000)
    args = ap.parse_args()
    out_file = ROOT / "bench" / "results" / "audit.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    results.update({"machine": platform.machine(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")})
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-audit-") as t:
        tmp = Path(t)
        if args.part in ("speed", "all"):
            results["speed"] = part_speed(tmp)
            print("speed", results["speed"], flush=True)
        if args.part in ("recall", "all"):
            results["recall"] = part_recall(tmp)
            print("recall", results["recall"], flush=True)
        if args.part in ("memory", "all"):  # last: RUSAGE_CHILDREN's peak is the largest child so far
            results["memory"] = part_memory(tmp, args.big)
            print("memory", results["memory"], flush=True)
    out_file.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
