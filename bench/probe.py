"""Probe benchmark: the plain PyTorch recipe vs `tlbench train --mode probe`, same images, same session.

    .venv/bin/python bench/probe.py [DATASET] [--repeat 2]

Each side runs as a whole process. tlbench runs cold (empty feature cache) and warm (cache hit).
Prints a Markdown table and writes bench/results/probe.json.
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
sys.path.insert(0, str(ROOT))


def run(cmd, env):
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{cmd} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1] if "{" not in out.stdout[:1] else out.stdout), wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", nargs="?", default=str(ROOT.parent / "shared" / "data" / "cats-dogs-dev"))
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from engine.data.scan import scan_dataset, split_dataset

    info = scan_dataset(args.dataset)
    train, val = split_dataset(info, 0.2, 0)
    tmp = Path(tempfile.mkdtemp(prefix="tlbench-bench-"))
    split_file = tmp / "split.json"
    split_file.write_text(json.dumps({"train": [[s.path, s.label] for s in train],
                                      "val": [[s.path, s.label] for s in val]}))
    rows = []
    for rep in range(args.repeat):
        for workers in (0, 2):
            res, wall = run([sys.executable, "bench/plain_probe.py", str(split_file), str(workers)], dict(os.environ))
            rows.append({"side": f"plain (num_workers={workers})", "rep": rep, "wall_s": wall, **res})
        env = {**os.environ, "TLBENCH_CACHE": str(tmp / f"cache{rep}"), "TLBENCH_RUNS": str(tmp / "runs")}
        cmd = [sys.executable, "-m", "tui.main", "train", args.dataset, "--mode", "probe", "--img-size", "224",
               "--json"]
        res, wall = run(cmd, env)
        rows.append({"side": "tlbench cold", "rep": rep, "wall_s": wall, **res})
        res, wall = run(cmd, env)
        rows.append({"side": "tlbench warm", "rep": rep, "wall_s": wall, **res})

    def best(side, key, fn=max):
        return fn(r[key] for r in rows if r["side"] == side)

    plain_best = max(best("plain (num_workers=0)", "extract_images_per_s"),
                     best("plain (num_workers=2)", "extract_images_per_s"))
    cold_ips = best("tlbench cold", "extract_images_per_s")
    cold_wall = best("tlbench cold", "wall_s", min)
    warm_wall = best("tlbench warm", "wall_s", min)
    cold_job = best("tlbench cold", "seconds", min)
    warm_job = best("tlbench warm", "seconds", min)
    summary = {
        "dataset": str(info.root), "images": len(train) + len(val), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
        "plain_images_per_s": round(plain_best, 1), "tlbench_cold_images_per_s": round(cold_ips, 1),
        "extraction_ratio": round(cold_ips / plain_best, 2),
        "plain_val_acc": best("plain (num_workers=0)", "val_acc"), "tlbench_val_acc": best("tlbench cold", "val_acc"),
        "cold_wall_s": round(cold_wall, 2), "warm_wall_s": round(warm_wall, 2),
        "cold_job_s": round(cold_job, 2), "warm_job_s": round(warm_job, 2),
        "warm_over_cold_job": round(warm_job / cold_job, 3),
        "rows": rows,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "probe.json").write_text(json.dumps(summary, indent=2))
    print("| side | extraction images/s | val acc | process wall s |\n|---|---|---|---|")
    for side in ["plain (num_workers=0)", "plain (num_workers=2)", "tlbench cold", "tlbench warm"]:
        ips = best(side, "extract_images_per_s") if side != "tlbench warm" else 0
        print(f"| {side} | {ips:.1f} | {best(side, 'val_acc'):.4f} | {best(side, 'wall_s', min):.2f} |")
    print(f"\nextraction speed-up vs the faster plain variant: {summary['extraction_ratio']}x; "
          f"warm job time / cold job time: {summary['warm_over_cold_job']:.1%} "
          f"(process wall incl. Python+torch start-up: {warm_wall / cold_wall:.1%})")


if __name__ == "__main__":
    main()
