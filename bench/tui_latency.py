"""Key-to-repaint latency of the workbench in a real pseudo-terminal, idle and while a training job runs.

    .venv/bin/python bench/tui_latency.py [--switches 42] [--moves 40]

The workbench runs as its own process on a pty (120x35, truecolor), exactly as over SSH. For each key the
clock starts when the key is written to the terminal and stops when the frame carrying that key's result
arrives (Textual writes a frame in one synchronized update; we look for a string only the new state
shows, e.g. the target screen's own label, or the next class's first file in the status line).

Two actions, each measured idle and under load: switching screens (1-7) and moving through the class list
(down/up). The first visit to each screen (which builds it) is reported separately. The load is a real training job started with t: a probe on the demo digits with a cold feature
cache at --img-size (default 192 px), so feature extraction saturates both cores for the whole measurement.
Target: p95 < 100 ms under load. Writes bench/results/tui_latency.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLS, ROWS = 120, 35

# A string each screen paints when it becomes visible (contiguous in one style run).
SCREEN_MARKERS = {
    "1": "split ", "2": "params", "3": "loss", "4": "No run chosen", "5": "source image",
    "6": "TV weight", "7": "run(s) in",
}
# As the `tlbench` command runs it (run_app: its exit path is what "quit" measures); the training settings
# come from the state file, as they would after a person set them on the Model screen.
CHILD = """
import sys
sys.path.insert(0, {root!r})
from tui.app import run_app
run_app([{dataset!r}, "--runs-dir", {runs!r}])
"""


class Terminal:
    """The workbench on a pty; a thread records every chunk of output with its arrival time."""

    def __init__(self, env: dict, code: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave,
                                     env=env, cwd=ROOT, start_new_session=True)
        os.close(slave)
        self.lock = threading.Lock()
        self.chunks: list[tuple[float, bytes]] = []
        self.alive = True
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while self.alive:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    break
                if not data:
                    break
                with self.lock:
                    self.chunks.append((time.perf_counter(), data))

    def mark(self) -> int:
        with self.lock:
            return len(self.chunks)

    def wait_for(self, marker: bytes, since: int, timeout: float = 10.0) -> float | None:
        """Arrival time of the first chunk after `since` whose text contains marker (ANSI codes removed)."""
        deadline = time.perf_counter() + timeout
        pattern = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
        while time.perf_counter() < deadline:
            with self.lock:
                chunks = self.chunks[since:]
            if chunks:
                text = pattern.sub(b"", b"".join(c for _, c in chunks))
                if marker in text:
                    # the chunk that completed the marker
                    acc = b""
                    for t, c in chunks:
                        acc += c
                        if marker in pattern.sub(b"", acc):
                            return t
            time.sleep(0.002)
        return None

    def press(self, key: bytes, marker: bytes, timeout: float = 10.0) -> float | None:
        since = self.mark()
        t0 = time.perf_counter()
        os.write(self.master, key)
        t = self.wait_for(marker, since, timeout)
        return None if t is None else (t - t0) * 1000

    def settle(self, quiet: float = 0.3, timeout: float = 15.0) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                last = self.chunks[-1][0] if self.chunks else 0
            if time.perf_counter() - last > quiet:
                return
            time.sleep(0.05)

    def close(self, timeout: float = 20.0) -> float:
        t0 = time.perf_counter()
        os.write(self.master, b"q")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return float("inf")
        finally:
            self.alive = False
        return time.perf_counter() - t0


def stats(values: list[float]) -> dict:
    got = sorted(v for v in values if v is not None)
    if not got:
        return {"n": 0}
    def pct(p):
        return got[min(len(got) - 1, int(round(p / 100 * (len(got) - 1))))]
    return {"n": len(got), "missed": len(values) - len(got), "p50_ms": round(pct(50), 1),
            "p95_ms": round(pct(95), 1), "max_ms": round(got[-1], 1), "mean_ms": round(statistics.mean(got), 1)}


def switch_screens(term: Terminal, n: int) -> list[float]:
    order = "2345671"
    out = []
    for i in range(n):
        key = order[i % len(order)]
        out.append(term.press(key.encode(), SCREEN_MARKERS[key].encode()))
        time.sleep(0.05)
    return out


def move_classes(term: Terminal, firsts: list[str], n: int, row: int = 0) -> tuple[list[float], int]:
    """down through the classes and back up; the marker is the new class's first file in the status line.
    Returns the latencies and the row the cursor ends on."""
    out = []
    step = 1
    for _ in range(n):
        if not 0 <= row + step < len(firsts):
            step = -step
        row += step
        out.append(term.press(b"\x1b[B" if step > 0 else b"\x1b[A", f"1/{firsts[row]}".encode()))
        time.sleep(0.05)
    return out, row


def make_big_dataset(root: Path, big: int) -> Path:
    """Class "a_big" with `big` small PNGs and three classes of 40: the grid must cope with the big one."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, n in (("a_big", big), ("b", 40), ("c", 40), ("d", 40)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"{cls}_{i:05d}.png")
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=42)
    ap.add_argument("--moves", type=int, default=40)
    ap.add_argument("--img-size", type=int, default=192)
    ap.add_argument("--big", type=int, default=0,
                    help="instead of the demo: a generated dataset whose first class holds this many images")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    name = f"tui_latency_big{args.big}.json" if args.big else "tui_latency.json"
    args.out = args.out or str(ROOT / "bench" / "results" / name)

    dataset = ROOT / "data" / "demo" / "digits"
    if args.big:
        dataset = make_big_dataset(Path(tempfile.mkdtemp(prefix="tlbench-big-")), args.big)
    classes = sorted(p.name for p in dataset.iterdir() if p.is_dir())
    counts = [len([f for f in (dataset / c).iterdir() if f.suffix == ".png"]) for c in classes]
    # the status line reads "<class> · 1/<count> · <file> …": count + file identify the class
    firsts = [f"{n} · {sorted((dataset / c).glob('*.png'))[0].name}" for c, n in zip(classes, counts)]

    tmp = Path(tempfile.mkdtemp(prefix="tlbench-latency-"))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "TLBENCH_CACHE": str(tmp / "cache"),
           "TLBENCH_RUNS": str(tmp / "runs"), "TLBENCH_OFFLINE": "1", "TLBENCH_STATE": str(tmp / "state.json")}
    (tmp / "state.json").write_text(json.dumps({"version": 1, "run_dir": None,
                                                "config": {"img_size": args.img_size, "epochs": 30}}))
    code = CHILD.format(root=str(ROOT), dataset=str(dataset), runs=str(tmp / "runs"))
    term = Terminal(env, code)
    t_start = time.perf_counter()
    first = term.wait_for(b"split ", 0, 60)
    startup_s = None if first is None else first - t_start
    term.settle(0.5)
    time.sleep(6)  # the engine warm-up (torch import) runs in the background after the first frame
    term.settle(0.5)

    results: dict = {}
    # The first visit to a screen builds it (compose, mount, its loading job): reported on its own.
    results["first_visit"] = switch_screens(term, 7)
    term.settle(0.5)
    results["idle_switch"] = switch_screens(term, args.switches)
    term.press(b"1", b"split ")
    term.settle()
    results["idle_classes"], row = move_classes(term, firsts, args.moves)

    term.press(b"3", b"loss")
    since = term.mark()
    os.write(term.master, b"t")
    started = term.wait_for(b"extract", since, 120) is not None
    time.sleep(3)
    results["train_switch"] = switch_screens(term, args.switches)
    term.press(b"1", b"split ")
    results["train_classes"], row = move_classes(term, firsts, args.moves, row)
    running = term.wait_for(b"train ", term.mark(), 1) is not None or started
    quit_s = term.close()

    summary = {k: stats(v) for k, v in results.items()}
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(), "cpus": os.cpu_count(),
           "load_avg_at_end": os.getloadavg(), "terminal": f"{COLS}x{ROWS} pty, truecolor",
           "startup_first_frame_s": None if startup_s is None else round(startup_s, 2),
           "dataset": "demo digits" if not args.big else f"generated: one class of {args.big} images + 3 of 40",
           "training_load": f"probe on that dataset, cold feature cache, img_size {args.img_size}",
           "training_was_running": running, "quit_during_job_s": round(quit_s, 2),
           "summary": summary, "raw_ms": {k: [None if v is None else round(v, 1) for v in vals]
                                          for k, vals in results.items()}}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"first frame after {out['startup_first_frame_s']} s; quit during the job took {out['quit_during_job_s']} s")
    print(f"{'':16}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for k, s in summary.items():
        print(f"{k:16}{s.get('n', 0):>4}{s.get('p50_ms', '-'):>9}{s.get('p95_ms', '-'):>9}{s.get('max_ms', '-'):>9}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
