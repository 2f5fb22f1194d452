"""`train --mode auto` on photos it has never seen, against the default probe and the best plain probe.

    nice -n 5 .venv/bin/python bench/auto_recipe.py [--draws 3] [--breeds 37] [--train-per 8] [--test-per 2]
        [--cat-draws 3] [--cat-train 24] [--cat-test 36] [--budget 15] [--only dogs-1 ...]

Fine-grained few-shot checks built from ../shared/data, several draws each:
- dogs-N: --breeds breeds of dog-breeds-dev drawn (seed N) among those with at least train-per + test-per
  photos, --train-per training photos each, the next --test-per of the breed held out as the unseen test photos
  (by default 37 x 8 / 2, the shape of issue 23's Pets check; 40 breeds of dog-breeds-dev have 10 photos or more);
- cats-N: cat-breeds-dev's 5 breeds (noisy labels), --cat-train training photos each, --cat-test unseen (36 of
  the breed's 60 by default: on 5 classes a test set of 60 puts one photo at 1.7 points, 180 at 0.6).
Each draw is written as a training folder (one folder per class, nothing else) and a test folder. Three recipes
train on the training folder, each a whole `tlbench train … --json` process on a cold feature cache of its own
(so its time includes every extraction), and each is scored by `tlbench eval RUN --data TEST` on the test photos:
- the default probe: `--mode probe` (EfficientNet-Lite0, 224 px; it holds 20% of the photos out to pick its
  epoch, as a user's run does);
- the best single plain probe: `--mode probe --backbone efficientnet_lite2 --img-size 260 --tta`;
- auto: `--mode auto --budget B` (no held-out photos: it refits on all of them).
This is the plain-PyTorch-baseline idea of bench/: the baseline is what a user gets without the search.
Writes bench/results/auto_recipe.json (a partial rerun keeps the other draws) and bench/results/auto_recipe.md.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the project (a worktree has it two levels up)
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data") if d.is_dir()),
            ROOT.parent / "shared" / "data")
RESULTS = ROOT / "bench" / "results"
RECIPES = {
    "default probe": ["--mode", "probe"],
    "Lite2 260 px probe + TTA": ["--mode", "probe", "--backbone", "efficientnet_lite2", "--img-size", "260", "--tta"],
    "auto": ["--mode", "auto"],
}


def order(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}|{name}".encode()).hexdigest()  # a fixed shuffle, the same on every machine


def photos(root: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(f for f in d.iterdir() if f.is_file()) for d in sorted(root.iterdir()) if d.is_dir()}


def write(out: Path, split: dict[str, tuple[list[Path], list[Path]]]) -> tuple[Path, Path]:
    if out.exists():
        shutil.rmtree(out)
    for cls, (train, test) in split.items():
        for part, files in (("train", train), ("test", test)):
            (out / part / cls).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(f, out / part / cls / f.name)  # mtime kept: the feature cache sees the same files
    return out / "train", out / "test"


def dog_draw(work: Path, seed: int, breeds_n: int, train_per: int, test_per: int) -> tuple[Path, Path]:
    breeds = {b: fs for b, fs in photos(DATA / "dog-breeds-dev").items() if len(fs) >= train_per + test_per}
    chosen = sorted(breeds, key=lambda b: order(seed, b))[:breeds_n]
    split = {}
    for b in sorted(chosen):
        fs = sorted(breeds[b], key=lambda f: order(seed, f.name))
        split[b] = (fs[:train_per], fs[train_per:train_per + test_per])
    return write(work / f"dogs-{seed}", split)


def cat_draw(work: Path, seed: int, train_per: int, test_per: int) -> tuple[Path, Path]:
    split = {}
    for b, fs in photos(DATA / "cat-breeds-dev").items():
        fs = sorted(fs, key=lambda f: order(seed, f.name))
        split[b] = (fs[test_per:test_per + train_per], fs[:test_per])
    return write(work / f"cats-{seed}", split)


def tlbench(args: list[str], env: dict) -> tuple[dict, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tui.main", *args, "--json"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout), wall


def load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def run_draw(name: str, train: Path, test: Path, work: Path, budget: float) -> dict:
    rows = {}
    for recipe, flags in RECIPES.items():
        env = {**os.environ, "TLBENCH_CACHE": str(work / f"cache-{name}-{len(rows)}"), "TLBENCH_RUNS":
               str(work / "runs"), "TLBENCH_OFFLINE": "1"}
        extra = ["--budget", str(budget)] if recipe == "auto" else []
        load_before = load()
        trained, train_s = tlbench(["train", str(train), *flags, *extra], env)
        scored, eval_s = tlbench(["eval", trained["run_dir"], "--data", str(test), "--workers", "0"], env)
        rows[recipe] = {"test_accuracy": scored["accuracy"], "test_images": scored["n"], "train_s": round(train_s, 1),
                        "eval_s": round(eval_s, 1), "load_before": load_before, "load_after": load(),
                        "train_images": trained.get("train_images"), "run_dir": trained["run_dir"]}
        if recipe == "auto":
            board = trained["auto"]
            rows[recipe].update({"recipe": board["winner"], "cv_accuracy": board["cv_accuracy"],
                                 "default_probe_cv": board["default_probe"]["cv_accuracy"],
                                 "search_s": board["search_seconds"], "left_out": board["left_out"],
                                 "leaderboard": board["leaderboard"]})
        print(f"{name} {recipe}: {scored['accuracy']:.3f} on {scored['n']} test photos (train {train_s:.0f}s, "
              f"eval {eval_s:.0f}s, load {load_before}-{load()})", file=sys.stderr, flush=True)
    return {"draw": name, "classes": len(list(train.iterdir())), "recipes": rows}


def table(results: list[dict]) -> str:
    names = list(RECIPES)
    out = ["| draw | classes | train / test | " + " | ".join(names) + " | auto's CV (default probe's) | auto's recipe |",
           "|---|---|---|" + "---|" * len(names) + "---|---|"]
    for r in results:
        rec = r["recipes"]
        first = rec[names[0]]
        cells = [f"{rec[n]['test_accuracy']:.3f} ({rec[n]['train_s'] / 60:.1f} min)" for n in names]
        out.append(f"| {r['draw']} | {r['classes']} | {rec['auto']['train_images']} / {first['test_images']} | "
                   + " | ".join(cells) + f" | {rec['auto']['cv_accuracy']:.3f} ({rec['auto']['default_probe_cv']:.3f}) | "
                   f"{rec['auto']['recipe']} |")
    for group in sorted({r["draw"].split("-")[0] for r in results}):
        rs = [r for r in results if r["draw"].startswith(group)]
        cells = []
        for n in names:
            accs = [r["recipes"][n]["test_accuracy"] for r in rs]
            spread = f" ± {statistics.stdev(accs):.3f}" if len(accs) > 1 else ""
            minutes = statistics.mean(r["recipes"][n]["train_s"] for r in rs) / 60
            cells.append(f"**{statistics.mean(accs):.3f}**{spread} ({minutes:.1f} min)")
        out.append(f"| {group}: mean of {len(rs)} | | | " + " | ".join(cells) + " | | |")
    return "\n".join(out)


def main():
    global DATA
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--breeds", type=int, default=37)
    ap.add_argument("--train-per", type=int, default=8)
    ap.add_argument("--test-per", type=int, default=2)
    ap.add_argument("--cat-draws", type=int, default=3)
    ap.add_argument("--cat-train", type=int, default=24)
    ap.add_argument("--cat-test", type=int, default=36)
    ap.add_argument("--budget", type=float, default=15.0)
    ap.add_argument("--only", action="append", help="draw names to run (dogs-1, cats-1, …)")
    ap.add_argument("--work", default=None, help="where the draws, caches and runs go (default: a temp dir)")
    ap.add_argument("--data", default=str(DATA), help="the shared data folder (default: ../shared/data)")
    args = ap.parse_args()
    DATA = Path(args.data)
    work = Path(args.work or tempfile.mkdtemp(prefix="tlbench-bench-auto-"))
    draws = {f"dogs-{i}": (lambda w, i=i: dog_draw(w, i, args.breeds, args.train_per, args.test_per))
             for i in range(1, args.draws + 1)}
    draws |= {f"cats-{i}": (lambda w, i=i: cat_draw(w, i, args.cat_train, args.cat_test))
              for i in range(1, args.cat_draws + 1)}
    out = RESULTS / "auto_recipe.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    results = [r for r in old.get("results", []) if "draw" in r]
    for name, make in draws.items():
        if args.only and name not in args.only:
            continue
        train, test = make(work)
        results = [r for r in results if r["draw"] != name] + [run_draw(name, train, test, work, args.budget)]
        results.sort(key=lambda r: (r["draw"].split("-")[0] != "dogs", r["draw"]))
        summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                   "machine": platform.processor() or platform.machine(), "budget_minutes": args.budget,
                   "draws": {"dogs": {"breeds": args.breeds, "train_per": args.train_per, "test_per": args.test_per},
                             "cats": {"train_per": args.cat_train, "test_per": args.cat_test}},
                   "results": results}
        out.write_text(json.dumps(summary, indent=2) + "\n")  # after every draw: a long run keeps what it did
        (RESULTS / "auto_recipe.md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
