"""Snapshots of every screen at 80x24 and 120x35 (pytest-textual-snapshot; Textual is pinned exactly).

Deterministic by construction: the bundled demo and runs the tests write (fixed names, dates and numbers),
no blinking cursor, no clock, training shown by replaying a fixed event stream, and every asynchronous load
(scan, registry, thumbnails) awaited before the picture. Update after an intended change with
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import pytest
from conftest import ROOT, make_pets_like
from tui_helpers import make_app, settle, wait_for, wait_thumbnails, write_run

from engine.core.events import CheckpointSaved, EpochEnded, JobFinished, JobStarted, LogLine, ProgressAdvanced
from tui.messages import JobEvent

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    """Paths show relative to the working directory: run from the repository root."""
    monkeypatch.chdir(ROOT)


async def scanned(pilot) -> None:
    """The demo scanned and the Data screen's visible thumbnails drawn (they show behind modals too)."""
    app = pilot.app
    await wait_for(pilot, lambda: app.state.info is not None and not app.jobs.running(), 60, "the scan")
    if app.current_mode == "data":
        await wait_thumbnails(pilot, app.screen.query_one("#thumbs"))


@pytest.fixture
def pets(tmp_path, monkeypatch):
    """37 classes with Oxford-IIIT Pets' names (generated, seeded); the app runs from tmp_path, so every
    path it shows reads "pets/…" on any machine."""
    monkeypatch.chdir(tmp_path)
    make_pets_like(tmp_path / "pets", per_class=4, size=32)
    return "pets"


@SIZES
def test_data(snap_compare, size, pets):
    async def before(pilot):
        await scanned(pilot)
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#thumbs"))

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


@SIZES
def test_model(snap_compare, size, pets):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.screen.registry is not None, 120, "the registry")
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


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
        await scanned(pilot)
        await pilot.press("3")
        replay_training(pilot.app.screen)
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


@SIZES
def test_train_finished(snap_compare, size, pets, tmp_path):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("3")
        screen = pilot.app.screen
        replay_training(screen, 30)
        run = str(tmp_path / "20260101-120000-pets-efficientnet_lite0-probe")
        final = JobFinished("completed", {"run_dir": run, "val_acc": 0.9, "best_val_acc": 0.9304,
                                          "best_epoch": 29, "train_images": 118, "val_images": 30,
                                          "skipped_images": 0, "feature_cache": "hit", "seconds": 12.5})
        screen.post_message(JobEvent("train", CheckpointSaved(run + "/best.pt", 29, True)))
        await settle(pilot)
        screen.job.final = final  # as tui.jobs.run_engine_job sets it before sending the final event
        pilot.app.jobs.end(screen.job)
        screen.post_message(JobEvent("train", final))
        await settle(pilot)

    assert snap_compare(make_app(pets), terminal_size=size, run_before=before)


@SIZES
def test_results(snap_compare, size, tmp_path):
    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


def model_screen_test(key: str):
    """Attack and Dream on a run, before a job starts."""
    def test(snap_compare, size, tmp_path):
        run = write_run(tmp_path / "runs")
        app = make_app(runs_dir=str(tmp_path / "runs"))
        app.state.run_dir = run

        async def before(pilot):
            await scanned(pilot)
            await pilot.press(key)
            await wait_for(pilot, lambda: pilot.app.screen.model is not None, 30, "the model")
            await settle(pilot)

        assert snap_compare(app, terminal_size=size, run_before=before)

    return SIZES(test)


test_attack = model_screen_test("5")
test_dream = model_screen_test("6")


@SIZES
def test_runs(snap_compare, size, tmp_path, monkeypatch):
    write_run(tmp_path / "runs", report=False)
    write_run(tmp_path / "runs", "20260102-090000-digits-efficientnet_lite0-probe", created="2026-01-02T09:00:00+0000")
    monkeypatch.chdir(tmp_path)  # the header names the runs folder relative to here
    app = make_app(ROOT / "data" / "demo" / "digits", runs_dir="runs")

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: pilot.app.screen.views, 30, "the runs")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_run_detail(snap_compare, size, tmp_path, monkeypatch):
    write_run(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    app = make_app(ROOT / "data" / "demo" / "digits", runs_dir="runs")

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: pilot.app.screen.views, 30, "the runs")
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


def test_preview(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("g", "right", "enter")
        image = pilot.app.screen.query_one("#preview-image")
        await wait_for(pilot, lambda: image.ready, 30, "the preview")
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 35), run_before=before)


def test_help(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=before)


def test_error_modal(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app("missing-dataset")  # relative: the message names it the same on every machine

    async def before(pilot):
        from tui.errors import ErrorModal

        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ErrorModal), 30, "the error")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
