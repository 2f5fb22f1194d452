"""The workflow through the workbench, by keys (issue 22): the Audit view (a on Data) runs the audit (r),
three suspects are marked (space), the Model screen (2) is set to auto (m) with a short budget typed in, t
trains, and Results (4) shows the run's own report. The real engine, on generated photos with planted
duplicates."""

from __future__ import annotations

import json
import os

from helpers.tui import make_app, run_with_timeout, text_of, wait_for
from textual.widgets import DataTable
from workflow_data import generated_photos, plant_duplicates

from engine.core.events import JobFailed, JobFinished
from engine.data.exclude import exclude_file, read_exclude
from engine.data.splits import load_plan
from tui.data.audit import AuditScreen
from tui.messages import JobEvent
from tui.widgets.fitline import FitLine

MARKS = 3


async def test_audit_mark_auto_and_results_by_keys(tmp_path):
    root = generated_photos(tmp_path / "photos")
    plant_duplicates(root, "coffee")
    finals: list = []

    def hook(message):
        if isinstance(message, JobEvent) and message.job == "train" and isinstance(message.event,
                                                                                    (JobFinished, JobFailed)):
            finals.append(message.event)

    # small and quick: the size the audit picks for these 48 px images anyway, three folds, no loader processes
    app = make_app(root, runs_dir=str(tmp_path / "runs"), config={"img_size": 64, "folds": 3, "workers": 0})

    async def scenario():
        async with app.run_test(size=(120, 35), message_hook=hook) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None and not app.jobs.running("scan"), 60,
                           "the scan")

            # the Audit view: no audit yet, r runs one, then it lists the suspects
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen), 10, "the audit view")
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.audit is not None
                           and "cv_accuracy" in app.screen.audit, 180, "the audit")
            await pilot.pause()
            audit_view = app.screen
            assert isinstance(audit_view, AuditScreen)
            assert len(audit_view.rows) >= MARKS and audit_view.audit["duplicates"], audit_view.audit
            table = audit_view.query_one("#audit-list", DataTable)
            for k in range(MARKS):  # the first three suspects, marked one after the other
                if k:
                    await pilot.press("down")
                await pilot.press("space")
                await pilot.pause()
            marked = read_exclude(exclude_file(root), root)
            chosen = {os.path.realpath(p) for row in audit_view.rows[:MARKS] for p in row["targets"]}
            assert marked == chosen and len(marked) >= MARKS, (marked, audit_view.rows[:MARKS])
            assert [str(table.get_row_at(k)[0]) for k in range(MARKS)] == ["✗"] * MARKS
            await pilot.press("escape")

            # Model: m cycles to auto, the budget typed into its field, t trains
            await pilot.press("2")
            await wait_for(pilot, lambda: bool(app.screen.query("#form")), 120, "the model form")
            for _ in range(8):
                if app.state.config.get("mode") == "auto":
                    break
                await pilot.press("m")
                await pilot.pause()
            assert app.state.config.get("mode") == "auto"
            assert app.screen.query_one("#row-budget").display  # shown in auto mode only
            app.screen.query_one("#field-budget").focus()
            await pilot.press("end", "ctrl+u", *"0.5", "escape")  # the default 15 (minutes) cleared, 0.5 typed
            await wait_for(pilot, lambda: app.state.config.get("budget") == 0.5, 10, "the budget")
            await pilot.press("t")
            await wait_for(pilot, lambda: bool(finals), 300, "auto to finish")
            assert isinstance(finals[0], JobFinished) and finals[0].reason == "completed", finals[0]
            await wait_for(pilot, lambda: app.state.run_dir is not None and not app.jobs.running(), 30,
                           "the run")
            run_dir = app.state.run_dir

            # Results: the run's own report, as the engine wrote it
            await pilot.press("4")
            await wait_for(pilot, lambda: getattr(app.screen, "view", None) is not None
                           and app.screen.view.report is not None, 60, "the run's report")
            report = json.loads((run_dir / "report.json").read_text())
            assert app.screen.view.report["accuracy"] == report["accuracy"]
            header = str(app.screen.query_one("#results-header", FitLine).render())
            # no held-out photos (auto's default): the report is the search's cross-validated estimate, and says so
            assert report["split"] == "cross-validated"
            assert f"accuracy {report['accuracy']:.3f}" in header and f"{report['n']} cross-validated images" in header, \
                header
            return run_dir, marked

    run_dir, marked = await run_with_timeout(scenario(), 600)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["mode"] == "auto" and config["budget"] == 0.5 and config["auto"]["winner"]
    assert config["excluded_images"] == len(marked)
    plan = load_plan(run_dir)
    assert plan is not None and plan["excluded"] == len(marked)
    planned = {os.path.realpath(root / rel) for side in ("train", "val") for rel, _ in plan[side]}
    assert planned and not planned & marked


async def test_end_to_end_train_attack_and_dream(tmp_path, tiny_dataset):
    """Train a probe, attack one of its images into another class, dream a class: all from the keys."""
    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 3})

    async def scenario():
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            await wait_for(pilot, lambda: app.state.run_dir is not None and not app.jobs.running(), 180, "training")
            image = str(next((tiny_dataset / "red").glob("*.png")))
            await pilot.press("5")
            screen = app.screen
            await wait_for(pilot, lambda: screen.model is not None and screen.model.run_dir, 60, "the model")
            screen.query_one("#attack-source").value = image
            screen.query_one("#attack-target").value = "blue"
            screen.query_one("#attack-eps").value = "16/255"
            screen.query_one("#attack-steps").value = "5"
            await pilot.press("escape", "a")
            await wait_for(pilot, lambda: screen.job is not None and screen.job.done.is_set(), 180, "the attack")
            await wait_for(pilot, lambda: len(screen.query_one("#attack-plot").history) == 5, 10, "five steps plotted")
            # the final event is handled after job.done: wait for what it draws
            await wait_for(pilot, lambda: "adversarial ·" in text_of(app, "#cap-adversarial"), 10, "the caption")
            assert screen.query_one("#img-adversarial").source is not None

            await pilot.press("6")
            dream = app.screen
            await wait_for(pilot, lambda: dream.model is not None, 60, "the model")
            dream.query_one("#dream-class").value = "green"
            dream.query_one("#dream-steps").value = "4"
            await pilot.press("escape", "d")
            await wait_for(pilot, lambda: dream.job is not None and dream.job.done.is_set(), 180, "the dream")
            await wait_for(pilot, lambda: dream.frame is not None, 10, "the dream frame")
            await wait_for(pilot, lambda: "probability" in text_of(app, "#dream-status"), 10, "the dream's summary")

    await run_with_timeout(scenario(), 600)
