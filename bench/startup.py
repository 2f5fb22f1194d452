"""Start-up time of two source trees side by side: `tlbench --help`, and `tlbench DATASET` to its first screen.

    .venv/bin/python bench/startup.py --before /path/to/old/checkout [--rounds 7]

The same interpreter and packages run both trees (each tree first on sys.path), in alternating rounds so the
machine's load falls on both alike; reported: the median of each and after/before. --help is a plain process
(wall time to exit); the first screen is the workbench on a pty at 120x35 until the Data screen's split line
is painted (bench/tui_latency.py's Terminal), then q. Also whether torch was imported by --help. Writes
bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from tui_latency import SCREEN_MARKERS, Terminal  # noqa: E402

HELP = "import sys; sys.path.insert(0, {root!r}); sys.argv = ['tlbench', '--help']\n" \
       "from tui.main import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n" \
       "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)"
APP = "import sys; sys.path.insert(0, {root!r})\nfrom tui.app import run_app\nrun_app([{dataset!r}, '--runs-dir', {runs!r}])"


def help_seconds(root: Path, env: dict) -> tuple[float, bool]:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", HELP.format(root=str(root))], env=env, capture_output=True, text=True,
                       cwd=root, check=True)
    return time.perf_counter() - t, "torch imported: True" in p.stderr


def first_screen_seconds(root: Path, env: dict, runs: str) -> float | None:
    t0 = time.perf_counter()
    term = Terminal(env, APP.format(root=str(root), dataset=str(root / "data" / "demo" / "digits"), runs=runs))
    t = term.wait_for(SCREEN_MARKERS["1"].encode(), 0, timeout=60)
    term.settle()
    term.close()
    return None if t is None else t - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="a checkout of the tree to compare with")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "startup.json"))
    args = ap.parse_args()
    trees = {"before": Path(args.before).resolve(), "after": ROOT}
    work = Path(tempfile.mkdtemp(prefix="tlbench-startup-"))
    env = dict(os.environ, TLBENCH_CACHE=str(work / "cache"), TLBENCH_STATE=str(work / "state.json"),
               TLBENCH_OFFLINE="1", TERM="xterm-256color", COLORTERM="truecolor")
    got = {name: {"help": [], "first_screen": [], "help_imports_torch": None} for name in trees}
    for _ in range(args.rounds):
        for name, root in trees.items():
            s, torch_in = help_seconds(root, env)
            got[name]["help"].append(s)
            got[name]["help_imports_torch"] = torch_in
            got[name]["first_screen"].append(first_screen_seconds(root, env, str(work / "runs")))
    out = {"date": time.strftime("%Y-%m-%d"), "rounds": args.rounds, "cpus": os.cpu_count(),
           "load_average": os.getloadavg(), "trees": {k: str(v) for k, v in trees.items()}}
    for name in trees:
        for key in ("help", "first_screen"):
            vals = [v for v in got[name][key] if v is not None]
            out[f"{name}_{key}_median_s"] = round(statistics.median(vals), 3) if vals else None
        out[f"{name}_help_imports_torch"] = got[name]["help_imports_torch"]
    for key in ("help", "first_screen"):
        b, a = out[f"before_{key}_median_s"], out[f"after_{key}_median_s"]
        out[f"{key}_after_over_before"] = round(a / b, 2) if a and b else None
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
