"""Snapshots of the Attack screen: on a run before a job, and an untargeted attack finished (its events
replayed) (pytest-textual-snapshot; Textual is pinned exactly). Deterministic by construction: generated data
and runs (fixed names, dates and numbers), no blinking cursor, every asynchronous load awaited. After an
intended change: `pytest tests/tui/attack/test_attack_snapshots.py --snapshot-update`, then look at the SVGs."""

from __future__ import annotations

import json

import pytest
from helpers.results import PETS_RUN, pets_app
from helpers.tui import (
    SIZES,
    all_drawn,
    all_loaded,
    make_app,
    pixels,
    settle,
    wait_for,
    write_run,
)

from engine.core.events import ImageRendered, JobFinished, JobStarted, StepEnded
from tui.messages import JobEvent


@SIZES
@pytest.mark.usefixtures("in_repo")
def test_attack(snap_compare, size, tmp_path):
    """The Attack screen on a run, before a job starts."""
    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run

    async def before(pilot):
        await all_drawn(pilot)
        await pilot.press("5")
        await wait_for(pilot, lambda: pilot.app.screen.model is not None, 30, "the model")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)



@SIZES
def test_attack_untargeted_finished(snap_compare, size, tmp_path, monkeypatch):
    app, run, data = pets_app(tmp_path, monkeypatch)
    report = json.loads((run / "report.json").read_text())
    report["robustness"] = {"pgd-linf": {"eps": [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255],
                                         "accuracy": [0.75, 0.41, 0.17, 0.03, 0.0]}}
    (run / "report.json").write_text(json.dumps(report))

    async def before(pilot):
        await all_loaded(pilot)
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
