"""`train --mode auto` against today's default probe, on the same split, with the offline EfficientNet-Lites.

    .venv/bin/python bench/auto_recipe.py [--budget-goal 15] [--budget-dogs 10] [--budget-cats 5] [--only NAME]

Datasets (../shared/data), each written once as a train/ + val/ folder pair under a work directory, so both
sides see the very same split:
- goal:  37 breeds of dog-breeds-dev (those with the most photos), 8 training photos each, the rest held out:
         the issue's target (>= 0.90 within a 15-minute budget on 2 CPU cores; the default probe's 0.84);
- dogs:  dog-breeds-dev, 120 breeds, 1,000 photos, about 20% of each breed held out (a breed of 1 photo trains);
- cats:  cat-breeds-dev, 5 breeds, 300 photos, 20% held out.
Each side runs as a whole process (`tlbench train ... --json`) on a cold feature cache of its own, so its time
includes every feature extraction. Prints a Markdown table; writes bench/results/auto_recipe.json.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the project (a worktree has it two levels up)
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data") if d.is_dir()),
            ROOT.parent / "shared" / "data")


def order(name: str) -> str:
    return hashlib.sha256(f"0|{name}".encode()).hexdigest()  # a fixed shuffle, the same on every machine


def write_split(out: Path, split: dict[str, tuple[list[Path], list[Path]]]) -> Path:
    if out.exists():
        shutil.rmtree(out)
    for cls, (train, val) in split.items():
        for part, files in (("train", train), ("val", val)):
            (out / part / cls).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(f, out / part / cls / f.name)  # mtime kept: the feature cache sees the same files
    return out


def by_class(root: Path) -> dict[str, list[Path]]:
    return {d.name: sorted((f for f in d.iterdir() if f.is_file()), key=lambda f: order(f.name))
            for d in sorted(root.iterdir()) if d.is_dir()}


def goal_split(work: Path) -> Path:
    classes = by_class(DATA / "dog-breeds-dev")
    top = sorted(classes, key=lambda c: (-len(classes[c]), c))[:37]
    return write_split(work / "goal-37x8", {c: (classes[c][:8], classes[c][8:]) for c in top})


def fraction_split(work: Path, name: str) -> Path:
    classes = by_class(DATA / name)
    split = {}
    for c, files in classes.items():
        n_val = len(files) // 5 if len(files) >= 2 else 0
        split[c] = (files[n_val:], files[:n_val])
    return write_split(work / name, split)


def run(args: list[str], env: dict) -> tuple[dict, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tui.main", "train", *args, "--json"], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout), wall


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-goal", type=float, default=15.0)
    ap.add_argument("--budget-dogs", type=float, default=10.0)
    ap.add_argument("--budget-cats", type=float, default=5.0)
    ap.add_argument("--only", choices=["goal", "dogs", "cats"], action="append")
    ap.add_argument("--work", default=None, help="where the split copies, caches and runs go (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="tlbench-bench-auto-"))
    sets = {"goal": (goal_split, args.budget_goal), "dogs": (lambda w: fraction_split(w, "dog-breeds-dev"),
                                                           args.budget_dogs),
            "cats": (lambda w: fraction_split(w, "cat-breeds-dev"), args.budget_cats)}
    results = []
    for name, (make, budget) in sets.items():
        if args.only and name not in args.only:
            continue
        dataset = make(work)
        env = {**os.environ, "TLBENCH_CACHE": str(work / f"cache-{name}"), "TLBENCH_RUNS": str(work / "runs"),
               "TLBENCH_OFFLINE": "1"}
        load_before = load()
        probe, probe_wall = run([str(dataset), "--mode", "probe"], env)
        auto, auto_wall = run([str(dataset), "--mode", "auto", "--budget", str(budget)], env)
        board = auto["auto"]
        results.append({
            "dataset": name, "path": str(dataset), "classes": len(auto["classes"]),
            "train_images": auto["train_images"], "val_images": auto["val_images"], "budget_minutes": budget,
            # the probe's best epoch is chosen on the validation split (optimistic); its last epoch is not
            "probe": {"val_acc": probe["best_val_acc"], "last_epoch_val_acc": probe["val_acc"],
                      "wall_s": round(probe_wall, 1)},
            "auto": {"val_acc": auto["val_acc"], "recipe": auto["recipe"], "cv_accuracy": board["cv_accuracy"],
                     "search_s": board["search_seconds"], "wall_s": round(auto_wall, 1)},
            "leaderboard": board["leaderboard"], "load_before": load_before, "load_after": load(),
        })
        print(f"{name}: probe {probe['best_val_acc']:.4f} ({probe_wall:.0f}s), auto {auto['val_acc']:.4f} "
              f"({auto_wall:.0f}s) {auto['recipe']}", file=sys.stderr, flush=True)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
               "machine": platform.processor() or platform.machine(), "results": results}
    out = ROOT / "bench" / "results" / "auto_recipe.json"
    if args.only and out.exists():  # a partial rerun keeps the other datasets' rows
        old = json.loads(out.read_text())
        keep = [r for r in old.get("results", []) if r["dataset"] not in {r["dataset"] for r in results}]
        summary["results"] = keep + results
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print("| dataset | classes | train / val | default probe | auto | auto recipe | auto time (search) |")
    print("|---|---|---|---|---|---|---|")
    for r in summary["results"]:
        print(f"| {r['dataset']} | {r['classes']} | {r['train_images']} / {r['val_images']} | "
              f"{r['probe']['val_acc']:.3f} ({r['probe']['wall_s']:.0f} s) | {r['auto']['val_acc']:.3f} | "
              f"{r['auto']['recipe']} | {r['auto']['wall_s']:.0f} s ({r['auto']['search_s']:.0f} s) |")
    for r in summary["results"]:
        print(f"\n{r['dataset']}: recipes tried (CV accuracy on the training split)\n")
        print("| recipe | CV accuracy | seconds |")
        print("|---|---|---|")
        for e in r["leaderboard"]:
            if "cv_accuracy" in e:
                print(f"| {e['recipe']} | {e['cv_accuracy']:.3f} ± {e['cv_std']:.3f} | {e['seconds']:.0f} |")
            else:
                print(f"| {e['recipe']} | skipped ({e['skipped']}, ~{e['estimated_seconds']:.0f} s) | |")


if __name__ == "__main__":
    main()
