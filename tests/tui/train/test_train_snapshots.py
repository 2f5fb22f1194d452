"""Snapshots of the Train screen, live and finished (a fixed event stream replayed) (pytest-textual-snapshot;
Textual is pinned exactly). Deterministic by construction: generated data and runs (fixed names, dates and
numbers), no blinking cursor, every asynchronous load awaited. After an intended change: `pytest
tests/tui/train/test_train_snapshots.py --snapshot-update`, then look at the SVGs."""

from __future__ import annotations

import pytest
from helpers.tui import (
    SIZES,
    all_drawn,
    make_app,
    settle,
)

from engine.core.events import CheckpointSaved, EpochEnded, JobFinished, JobStarted, LogLine, ProgressAdvanced
from tui.messages import JobEvent

pytestmark = pytest.mark.usefixtures("in_repo")

def replay_training(screen, epochs: int = 10) -> None:
    """A fixed probe run's event stream, as engine.train.job emits it, for a job the screen started (its
    state — running, done — is what the screen shows; no worker runs)."""
    screen.job = screen.start_job("train")
    screen.tlbench.set_job_status("train", "train starting")
    events = [JobStarted("train"), LogLine("device: cpu (no CUDA GPU visible)"),
              LogLine("dataset: pets — layout class-folders, 148 images, 37 classes"),
              JobStarted("train", "probe efficientnet_lite0 on pets", "runs/20260101-120000-pets-probe"),
              ProgressAdvanced("scan", 148, 148, "files"),
              LogLine("extracting features for 148 of 148 images (0 cached)"),
              ProgressAdvanced("extract", 148, 148, "images", 80.0)]
    for e in range(1, epochs + 1):
        events.append(EpochEnded(e, 30, {"train_loss": 1.5 / e, "train_acc": 0.98 - 0.4 * 0.8 ** e,
                                         "val_loss": 1.6 / e + 0.1, "val_acc": 0.93 - 0.4 * 0.8 ** e}, 0.25))
    for event in events:
        screen.post_message(JobEvent("train", event))


@SIZES
def test_train_live(snap_compare, size, pets):
    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("3")
        replay_training(pilot.app.screen)
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


@SIZES
def test_train_finished(snap_compare, size, pets, tmp_path):
    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("3")
        screen = pilot.app.screen
        replay_training(screen, 30)
        run = str(tmp_path / "20260101-120000-pets-efficientnet_lite0-probe")
        final = JobFinished("completed", {"run_dir": run, "val_acc": 0.9, "best_val_acc": 0.9304,
                                          "best_epoch": 29, "epochs": 30, "train_images": 118, "val_images": 30,
                                          "skipped_images": 0, "feature_cache": "hit", "seconds": 12.5})
        screen.post_message(JobEvent("train", CheckpointSaved(run + "/best.pt", 29, True)))
        await settle(pilot)
        screen.job.final = final  # as tui.jobs.run_engine_job sets it before sending the final event
        pilot.app.jobs.end(screen.job)
        screen.post_message(JobEvent("train", final))
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)
