"""The workbench in tests: the app as tests build it, waiting on conditions (never on a fixed delay), reading
what a widget shows, and runs and reports written as the engine writes them."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image
from textual import events
from textual.keys import _character_to_key
from textual.widgets import Static

from helpers.data import DEMO
from tui.app import create_app

RUN_NAME = "20260101-120000-digits-efficientnet_lite0-probe"
# Every screen's snapshot at the size of an SSH terminal and at a larger one.
SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])


def make_app(dataset=DEMO, runs_dir=None, **options):
    """The app as tests use it: no blinking cursor, no colour hint, no background warm-up, and a state file
    of the test's own (beside its TLBENCH_CACHE, which conftest makes per test)."""
    state = Path(os.environ.get("TLBENCH_CACHE", "/nonexistent")).parent / "state.json"
    options = {"blink": False, "color_hint": False, "warm": False, "state_file": state, **options}
    return create_app(dataset, runs_dir, **options)


async def wait_for(pilot, predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Let the app run until predicate() holds; fail (not hang) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.05)


def text_of(app, selector: str) -> str:
    """What a Static (or a FitLine) on the current screen shows."""
    return str(app.screen.query_one(selector, Static).render())


async def scan_finished(pilot) -> None:
    """The dataset scanned and open."""
    await wait_for(pilot, lambda: pilot.app.state.info is not None and not pilot.app.jobs.running("scan"),
                   60, "the scan")
    await pilot.pause()


async def all_loaded(pilot) -> None:
    """The dataset scanned and no job left running (the split, a run's files read)."""
    app = pilot.app
    await wait_for(pilot, lambda: app.state.info is not None and not app.jobs.running(), 60, "the scan")


async def all_drawn(pilot) -> None:
    """all_loaded, and the Data screen's visible thumbnails drawn (they show behind modals too)."""
    await all_loaded(pilot)
    if pilot.app.current_mode == "data":
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#thumbs"))


async def wait_thumbnails(pilot, grid, timeout: float = 30.0) -> None:
    await wait_for(pilot, lambda: grid.items and grid.loading == 0, timeout, "thumbnails")
    await pilot.pause()


async def settle(pilot) -> None:
    """Every queued message handled and every worker done; toasts (they expire on a timer) cleared."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()
    pilot.app.clear_notifications()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def demo_paths(digit: int, n: int) -> list[str]:
    return sorted(str(p) for p in (DEMO / str(digit)).glob("*.png"))[:n]


def write_run(root: Path, name: str = RUN_NAME, *, report: bool = True, classes: list[str] | None = None,
              created: str = "2026-01-01T12:00:00+0000") -> Path:
    """A finished probe run on the demo digits, as engine.train.job and engine.evaluate.evaluation write it."""
    classes = classes or [str(i) for i in range(10)]
    run = root / name
    run.mkdir(parents=True)
    # A fixed dataset path: snapshots must not show where this checkout lives.
    config = {"dataset": "/data/digits", "backbone": "efficientnet_lite0", "mode": "probe", "epochs": 5,
              "batch_size": 64, "lr": 0.001, "img_size": 64, "seed": 0, "val_fraction": 0.2,
              "classes": classes, "train_images": 1438, "val_images": 359,
              "created": created}
    (run / "config.json").write_text(json.dumps(config))
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.8 + 0.03 * e, "val_loss": 1.2 / e,
             "val_acc": 0.75 + 0.04 * e, "lr": 0.001, "seconds": 0.5} for e in range(1, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps({"run_dir": str(run), "val_acc": 0.95, "best_val_acc": 0.95,
                                                  "best_epoch": 5, "seconds": 42.0}))
    if report:
        (run / "report.json").write_text(json.dumps(sample_report(classes)))
    return run


def sample_report(classes: list[str]) -> dict:
    """A report in the agreed schema: mostly right, 3 often read as 8 and 9 as 4."""
    n = len(classes)
    confusion = [[0] * n for _ in range(n)]
    for i in range(n):
        confusion[i][i] = 34
    confusion[3][8], confusion[9][4], confusion[1][7] = 4, 2, 1
    per_class = [{"class": c, "precision": 0.95, "recall": 0.94, "accuracy": 0.94, "support": sum(confusion[i])}
                 for i, c in enumerate(classes)]
    losses = []
    for true, pred, count in ((3, 8, 4), (9, 4, 2), (1, 7, 1)):
        for k, path in enumerate(demo_paths(true, count)):
            losses.append({"path": path, "true": classes[true], "predicted": classes[pred],
                           "prob_true": 0.05, "prob_predicted": 0.9 - 0.1 * k, "loss": 3.0 - 0.2 * k})
    return {"split": "val", "checkpoint": "best.pt", "n": sum(map(sum, confusion)), "classes": classes,
            "accuracy": 0.9804, "top5": 0.9972, "per_class": per_class, "confusion": confusion,
            "most_confused": [{"true": "3", "predicted": "8", "count": 4}, {"true": "9", "predicted": "4", "count": 2},
                              {"true": "1", "predicted": "7", "count": 1}],
            "top_losses": losses}


def pixels(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    """An image's raw RGB bytes as an ImageRendered event carries them: one colour, a white diagonal."""
    img = Image.new("RGB", (size, size), rgb)
    for x in range(size):
        img.putpixel((x, x), (255, 255, 255))
    return img.tobytes()


async def burst(pilot, *keys: str) -> None:
    """Keys as a terminal delivers a burst: all queued at once, nothing handled in between."""
    app = pilot.app
    for key in keys:
        char = key if len(key) == 1 else None
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        app.post_message(events.Key(name, char))
    await pilot.pause()
    await pilot.pause()


async def run_with_timeout(coro, timeout: float):
    """A hang fails the test instead of blocking the suite."""
    return await asyncio.wait_for(coro, timeout)
