"""Snapshots of Results, Attack, Dream and Runs at 80x24 and 120x35 with a real-length dataset: the 37
Oxford-IIIT Pets breeds (long names), a report engine.evaluate.evaluation builds from fixed logits, runs that
finished, stopped and failed, and the events an attack and a dream emit, replayed.

Deterministic: fixed names, dates and numbers, generated images, no blinking cursor, every load awaited.
Update after an intended change with `pytest tests/tui/test_tui_snapshots_results.py --snapshot-update`, and look
at the SVGs.
"""

from __future__ import annotations

import json

import pytest
from conftest import DEMO
from PIL import Image
from tui_helpers import make_app, settle, wait_for, wait_thumbnails
from tui_results_helpers import PETS, PETS_RUN, pets_dataset, write_pets_run

from engine.core.events import ImageRendered, JobFinished, JobStarted, StepEnded
from tui.messages import JobEvent

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])


async def scanned(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.state.info is not None and not app.jobs.running(), 60, "the scan")


def pets_app(tmp_path, monkeypatch, **runs):
    """The app on the bundled digits (the Data screen is not shown) with a pets run in use; paths are shown
    relative to tmp_path."""
    monkeypatch.chdir(tmp_path)
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data, **runs)
    app = make_app(DEMO, runs_dir="runs")
    app.state.run_dir = run
    return app, run, data


@SIZES
def test_results_37_classes(snap_compare, size, tmp_path, monkeypatch):
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        # the cursor on a mistake far from the corner: the headers stay, the crosshair shows
        await pilot.press(*["down"] * 36, *["right"] * 30)
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_results_row_percentages(snap_compare, size, tmp_path, monkeypatch):
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
        await pilot.press("n", "i")  # row percentages; the images focused (the captions' cursor)
        await wait_thumbnails(pilot, pilot.app.screen.query_one("#loss-images"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


def pixels(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    img = Image.new("RGB", (size, size), rgb)
    for x in range(size):
        img.putpixel((x, x), (255, 255, 255))
    return img.tobytes()


@SIZES
def test_attack_untargeted_finished(snap_compare, size, tmp_path, monkeypatch):
    app, run, data = pets_app(tmp_path, monkeypatch)
    report = json.loads((run / "report.json").read_text())
    report["robustness"] = {"pgd-linf": {"eps": [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255],
                                         "accuracy": [0.75, 0.41, 0.17, 0.03, 0.0]}}
    (run / "report.json").write_text(json.dumps(report))

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("5")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model")
        source = "pets/yorkshire_terrier/yorkshire_terrier_1.jpg"  # relative: the same on every machine
        screen.set_source(source, "yorkshire_terrier")
        from tui.attack.screen import AttackRequest

        screen.prepare(AttackRequest(source, None, "pgd-linf", 4 / 255, 10, str(run), ""))
        events = [JobStarted("attack", "pgd linf eps 4/255, 10 steps untargeted", str(run))]
        for step in range(1, 11):
            events.append(StepEnded("attack", step, 10, {"label_prob": 0.92 - 0.085 * step, "loss": 0.1 * step}))
        for pane, rgb in (("original", (180, 140, 90)), ("adversarial", (185, 135, 95)), ("perturbation", (90, 90, 90))):
            events.append(ImageRendered(f"attack-{pane}", 10, None, 16, 16, pixels(rgb), {}))
        out = f"runs/{PETS_RUN}/attacks/20260101-120501-pgd"
        events.append(JobFinished("completed", {"out_dir": out, "results": [{
            "path": source, "before": [{"class": "yorkshire_terrier", "prob": 0.92}],
            "after": [{"class": "scottish_terrier", "prob": 0.81}], "success": True, "linf_255": 4.0, "l2": 0.61}]}))
        for event in events:
            screen.post_message(JobEvent("attack", event))
        await wait_for(pilot, lambda: len(screen.query_one("#attack-plot").history) == 10, 10, "the steps")
        for pane in ("original", "adversarial", "perturbation"):
            view = screen.query_one(f"#img-{pane}")
            await wait_for(pilot, lambda v=view: v.ready, 10, f"the {pane} image")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_dream_finished(snap_compare, size, tmp_path, monkeypatch):
    app, run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("6")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model")
        from tui.dream.screen import DreamRequest

        screen.query_one("#dream-class").value = "staffordshire_bull_terrier"
        screen.prepare(DreamRequest("staffordshire_bull_terrier", 100, None, 0, "robust", str(run), ""))
        events = [StepEnded("dream", s, 100, {"target_prob": min(0.99, 0.01 * s * 1.2)}) for s in range(1, 101)]
        path = f"runs/{PETS_RUN}/dreams/20260101-120600-staffordshire_bull_terrier-robust.png"
        events += [ImageRendered("dream", 100, path, 16, 16, pixels((120, 90, 60)), {"target_prob": 0.99}),
                   JobFinished("completed", {"path": path, "probability": 0.99, "rank": 1})]
        for event in events:
            screen.post_message(JobEvent("dream", event))
        await wait_for(pilot, lambda: len(screen.query_one("#dream-plot").history) == 100, 10, "the steps")
        await wait_for(pilot, lambda: screen.query_one("#dream-image").ready, 10, "the image")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_runs_statuses(snap_compare, size, tmp_path, monkeypatch):
    app, run, data = pets_app(tmp_path, monkeypatch, created="2026-01-01T12:00:00+0000")
    root = tmp_path / "runs"
    write_pets_run(root, data, "20260102-090000-oxford-pets-efficientnet_lite0-full", status="stopped",
                   mode="full", created="2026-01-02T09:00:00+0000")
    write_pets_run(root, data, "20260103-090000-oxford-pets-resnet50-probe", status="failed", backbone="resnet50",
                   created="2026-01-03T09:00:00+0000")
    write_pets_run(root, data, "20260104-090000-oxford-pets-convnext_tiny-partial", mode="partial",
                   backbone="convnext_tiny", created="2026-01-04T09:00:00+0000", epochs=4)
    assert len(PETS) == 37

    async def before(pilot):
        await scanned(pilot)
        await pilot.press("7")
        await wait_for(pilot, lambda: len(pilot.app.screen.views) == 4, 30, "the runs")
        await pilot.press("down")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)
