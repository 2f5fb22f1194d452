"""Scan load benchmark (issue 6): `tlbench scan` on 5,000 and 50,000 small files — seconds and peak RSS.

    .venv/bin/python bench/scan_load.py [--counts 5000,50000]

Baseline in the same session: what a plain script does to check a folder — torchvision's ImageFolder to
list it, then PIL's open + verify on every file. Each side runs as its own process; peak RSS comes from the
kernel's accounting of that process (wait4); "imports only" is `tlbench scan --help`, the same process
stopping before the scan (Python and tlbench's CLI; scanning loads no PyTorch), so the difference is what
scanning costs. The plain script's cost includes importing torchvision, as it would for its user. The scan of more than
2,000 files runs in worker processes; their memory is the kernel's to report per child, so the bounded-memory
claim rests on the parent (which holds the results) staying flat as the file count grows tenfold.
Writes bench/results/scan_load.json.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

PLAIN = """
import sys
from PIL import Image
from torchvision.datasets import ImageFolder
ds = ImageFolder(sys.argv[1], loader=lambda p: p)  # list only
bad = 0
for path, _ in ds.samples:
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception:
        bad += 1
print(len(ds.samples), bad)
"""


def make_files(root: Path, count: int, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class_{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:06d}.png")


def measure(cmd: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process."""
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execve(cmd[0], cmd, env)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed")
    return seconds, usage.ru_maxrss / 1024.0  # ru_maxrss is in kB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="5000,50000")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tlbench-scan-"))
    env = {**os.environ, "TLBENCH_CACHE": str(tmp / "cache")}
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        data = tmp / f"files{count}"
        t = time.perf_counter()
        make_files(data, count)
        print(f"generated {count} files in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        tl = [sys.executable, "-m", "tui.main", "scan", str(data), "--json"]
        os.chdir(ROOT)
        for side, cmd in (("imports only (tlbench scan --help)", tl[:4] + ["--help"]),
                          ("plain ImageFolder + PIL verify", [sys.executable, "-c", PLAIN, str(data)]),
                          ("tlbench scan (cold)", tl), ("tlbench scan (warm cache)", tl)):
            seconds, rss = measure(cmd, env)
            rows.append({"files": count, "side": side, "seconds": round(seconds, 2), "peak_rss_mb": round(rss, 1)})
            print(rows[-1], file=sys.stderr)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "scan_load.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
                                                     "rows": rows}, indent=2))
    print("| files | side | seconds | peak RSS MB |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['files']:,} | {r['side']} | {r['seconds']} | {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
