"""Thumbnail benchmark: a 24-thumbnail grid's render time, and memory while browsing 10,000 images.

    .venv/bin/python bench/thumbnails.py [--images 10000]

1. 24 photos (640x480 JPEG) rendered as 14x7-cell half-block thumbnails, cold, through the workbench's
   ThumbnailCache pool (decode at reduced size, LANCZOS to the cell size, rich-pixels segments): wall time
   for all 24 (target < 300 ms), and the same in the app — from choosing the class to the last visible
   thumbnail painted.
2. A class of N small JPEGs browsed end to end with page-down in the app (headless, 120x35): resident memory
   sampled along the way (target: flat — the grid renders only what is visible; the cache is bounded).

Writes bench/results/thumbnails.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> list[str]:
    """Smooth colour gradients with noise: JPEG-compressible like photos, different from each other."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(n):
        base = np.stack([(xx * (i % 7 + 1)) % 256, (yy * (i % 5 + 1)) % 256, ((xx + yy) * (i % 3 + 1)) % 256], -1)
        noise = rng.integers(-20, 21, (h, w, 3))
        arr = np.clip(base + noise, 0, 255).astype("uint8")
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(arr).save(path, quality=85)
        paths.append(str(path))
    return paths


def grid_in_cache(paths: list[str]) -> dict:
    from tui.base_app import load_thumbnail
    from tui.widgets.thumbnails import ThumbnailCache

    results = []
    for _ in range(5):
        cache = ThumbnailCache(load_thumbnail)
        done = []
        keys = [(p, 14, 7, (30, 30, 30)) for p in paths]
        t0 = time.perf_counter()
        cache.request(keys, lambda k: True, lambda done=done: done.append(time.perf_counter()))
        while len(done) < len(keys):
            time.sleep(0.001)
        results.append((max(done) - t0) * 1000)
        cache.shutdown()
    return {"runs_ms": [round(r, 1) for r in results], "median_ms": round(statistics.median(results), 1),
            "best_ms": round(min(results), 1)}


async def grid_in_app(root: Path) -> dict:
    """Time from highlighting the class to its 24 visible thumbnails painted (fresh cache)."""
    from textual.widgets import DataTable

    from tui.app import create_app

    app = create_app(root, blink=False, color_hint=False, warm=False)
    async with app.run_test(size=(160, 48)) as pilot:
        while app.state.info is None:
            await pilot.pause(0.05)
        grid = app.screen.query_one("#thumbs")
        table = app.screen.query_one("#classes", DataTable)
        t0 = time.perf_counter()
        table.move_cursor(row=1)  # photos (classes sorted: a-other, photos)
        await pilot.pause()
        while not grid.items or grid.items[0].label != "photos" or grid.loading:
            await pilot.pause(0.002)
        elapsed = (time.perf_counter() - t0) * 1000
        visible = len(grid.visible_indices())
    return {"visible": visible, "ms": round(elapsed, 1)}


async def browse(root: Path, label: str, sample_every: int) -> dict:
    from textual.widgets import DataTable

    from tui.app import create_app

    app = create_app(root, blink=False, color_hint=False, warm=False)
    samples = []
    async with app.run_test(size=(120, 35)) as pilot:
        t_scan = time.perf_counter()
        while app.state.info is None:
            await pilot.pause(0.05)
        scan_s = time.perf_counter() - t_scan
        table = app.screen.query_one("#classes", DataTable)
        table.move_cursor(row=app.state.info.classes.index(label))
        grid = app.screen.query_one("#thumbs")
        await pilot.pause()
        grid.focus()
        n = len(grid.items)
        presses = 0
        t0 = time.perf_counter()
        samples.append({"press": 0, "cursor": 0, "rss_mb": round(rss_mb(), 1), "cached": len(app.thumbnails)})
        while grid.cursor < n - 1:
            await pilot.press("pagedown")
            presses += 1
            if presses % sample_every == 0:
                while grid.loading:  # let the visible page finish, as a person looking at it would
                    await pilot.pause(0.01)
                samples.append({"press": presses, "cursor": grid.cursor, "rss_mb": round(rss_mb(), 1),
                                "cached": len(app.thumbnails)})
        while grid.loading:
            await pilot.pause(0.01)
        samples.append({"press": presses, "cursor": grid.cursor, "rss_mb": round(rss_mb(), 1),
                        "cached": len(app.thumbnails)})
        browse_s = time.perf_counter() - t0
        rendered = app.thumbnails.rendered
    rss = [s["rss_mb"] for s in samples]
    full = next((s for s in samples if s["cached"] >= app.thumbnails.max_items), samples[-1])
    return {"images": n, "scan_s": round(scan_s, 1), "pages": presses, "browse_s": round(browse_s, 1),
            "thumbnails_rendered": rendered, "cache_max_items": app.thumbnails.max_items,
            "rss_first_page_mb": rss[0], "rss_when_cache_full_mb": full["rss_mb"], "cache_full_at_image": full["cursor"],
            "rss_end_mb": rss[-1], "rss_max_mb": max(rss),
            "rss_growth_after_cache_full_mb": round(rss[-1] - full["rss_mb"], 1), "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "thumbnails.json"))
    args = ap.parse_args()
    os.environ.setdefault("TLBENCH_CACHE", tempfile.mkdtemp(prefix="tlbench-thumbs-cache-"))
    tmp = Path(tempfile.mkdtemp(prefix="tlbench-thumbs-"))

    photos = make_photos(tmp / "grid" / "photos", 24, (640, 480))
    make_photos(tmp / "grid" / "a-other", 2, (64, 48))
    cache_run = grid_in_cache(photos)
    app_run = asyncio.run(grid_in_app(tmp / "grid"))
    print(f"24 thumbnails (640x480 JPEG -> 14x7 cells), pool of 2 threads: median {cache_run['median_ms']} ms "
          f"(best {cache_run['best_ms']}); in the app, class chosen -> {app_run['visible']} visible painted: "
          f"{app_run['ms']} ms")

    t = time.perf_counter()
    make_photos(tmp / "many" / "big", args.images, (64, 48))
    make_photos(tmp / "many" / "small", 2, (64, 48))
    print(f"wrote {args.images} images in {time.perf_counter() - t:.0f}s; browsing …")
    browsing = asyncio.run(browse(tmp / "many", "big", sample_every=max(1, args.images // 15 // 20)))
    b = browsing
    print(f"browsed {b['images']} images in {b['pages']} pages: RSS {b['rss_first_page_mb']} MB on the first page, "
          f"{b['rss_when_cache_full_mb']} MB once the cache was full ({b['cache_max_items']} thumbnails, at image "
          f"{b['cache_full_at_image']}), {b['rss_end_mb']} MB at image {b['images']} "
          f"(+{b['rss_growth_after_cache_full_mb']} MB after the cache filled)")
    out = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "cpus": os.cpu_count(),
           "grid24_pool": cache_run, "grid24_in_app": app_run, "browse": browsing}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
