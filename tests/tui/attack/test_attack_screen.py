"""The Attack screen: the job's events shown (plot, panes, captions), a status line whose path shrinks from
the middle at 80x24 instead of wrapping out of sight, the untargeted attack's plot, the robustness sweep from
the keyboard and the sweeps a report holds, and Grad-CAM over the original and the adversarial image (h)."""

from __future__ import annotations

import json

import pytest
from helpers.data import make_dataset
from helpers.tui import (
    make_app,
    run_with_timeout,
    scan_finished,
    text_of,
    wait_for,
    write_run,
)
from PIL import Image
from textual.widgets import DataTable

from engine.core.events import ImageRendered, JobFinished
from engine.core.jobs import run_job
from engine.train.config import TrainConfig
from engine.train.job import train
from tui.messages import JobEvent
from tui.widgets.image_view import ImageView
from tui.widgets.thumbnails import MemoryImage

LONG_RUN = "20260101-120000-oxford-iiit-pets-efficientnet_lite0-probe"


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A real probe run on three colours (its model attacks, sweeps and dreams)."""
    base = tmp_path_factory.mktemp("probe")
    root = make_dataset(base / "colours", {"red": 10, "blue": 10, "green": 10})
    cfg = TrainConfig(dataset=str(root), img_size=32, epochs=5, lr=1e-2, runs_dir=str(base / "runs"))
    final = run_job("train", lambda ctx: train(cfg, ctx))
    return root, final.result["run_dir"]


async def test_attack_status_keeps_the_path_whole_in_spirit_at_80x24(tmp_path):
    """D4: "PNGs in <path>" fits the line: the path shrinks from its middle, its end (the folder) stays."""
    run = write_run(tmp_path / "runs", LONG_RUN)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        screen = app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model info")
        out = f"/home/someone/experiments/runs/{LONG_RUN}/attacks/20260101-120501-pgd"
        summary = {"out_dir": out, "results": [{
            "path": "a.png", "before": [{"class": "staffordshire_bull_terrier", "prob": 0.98}],
            "after": [{"class": "american_pit_bull_terrier", "prob": 0.97}], "success": True, "linf_255": 4.0,
            "l2": 0.5}]}
        screen.post_message(JobEvent("attack", JobFinished("completed", summary)))
        await pilot.pause()
        await pilot.pause()
        status = text_of(app, "#attack-status")
        width = screen.query_one("#attack-status").content_region.width
        assert status.startswith("completed · staff") and " 0.98 → americ" in status and " 0.97 · PNGs in " in status
        assert len(status) <= width and status.endswith("120501-pgd")
        for pane in ("original", "adversarial"):  # class and probability, and the verdict, whole or shortened
            caption = text_of(app, f"#cap-{pane}")
            assert len(caption) <= screen.query_one(f"#cap-{pane}").content_region.width
        assert text_of(app, "#cap-adversarial").endswith("0.97 · fooled")
        model_line = text_of(app, "#model-line")
        assert model_line.startswith("Model: run 20260101") and model_line.rstrip().endswith("10 classes")


def most_confident(run_dir, paths) -> str:
    """The image the run's model classifies most confidently: its original class surely falls under attack
    (on a barely trained probe an unsure image's class can rise when the attack's steps are this coarse)."""
    from engine.models.loading import load_run_model
    from engine.serve.predict import predict_paths

    model, record = load_run_model(run_dir)
    rows = predict_paths(model, record, [str(p) for p in paths])
    return max(rows, key=lambda r: r["predictions"][0]["prob"])["path"]


async def test_untargeted_attack_plots_the_original_class_falling(tmp_path, probe):
    """D5: an untargeted attack has no target probability; the plot shows the original class's instead
    (StepEnded("attack") carries it as label_prob), read from a real attack's events."""
    root, run_dir = probe
    app = make_app(root, runs_dir=str(tmp_path / "runs"))

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            from pathlib import Path

            app.state.run_dir = Path(run_dir)
            app.state.changed()
            await pilot.press("5")
            screen = app.screen
            await wait_for(pilot, lambda: screen.model is not None and screen.model.run_dir, 60, "the model")
            screen.query_one("#attack-source").value = most_confident(run_dir, sorted((root / "red").glob("*.png")))
            screen.query_one("#attack-target").value = ""
            screen.query_one("#attack-eps").value = "16/255"
            screen.query_one("#attack-steps").value = "4"
            await pilot.press("escape", "a")
            await wait_for(pilot, lambda: screen.job is not None and screen.job.done.is_set(), 180, "the attack")
            plot = screen.query_one("#attack-plot")
            await wait_for(pilot, lambda: len(plot.history) == 4, 10, "four steps")
            drawn = [(key, [r[key] for r in plot.history if isinstance(r.get(key), float)]) for key, _ in plot.series]
            assert drawn and all(len(points) == 4 for _, points in drawn), drawn
            key, points = drawn[0]
            assert key == "label_prob" and points[-1] < points[0]  # the original class gives way
            assert "original class" in text_of(app, "#attack-status") or "PNGs in" in text_of(app, "#attack-status")

    await run_with_timeout(scenario(), 300)


async def test_robustness_sweep_runs_from_the_attack_screen(tmp_path, probe):
    """R runs engine.adversarial.attacks' sweep on the run; the panel then shows it (it read "none yet" for ever)."""
    root, run_dir = probe
    app = make_app(root, runs_dir=str(tmp_path / "runs"))

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            from pathlib import Path

            app.state.run_dir = Path(run_dir)
            app.state.changed()
            await pilot.press("5")
            screen = app.screen
            table = screen.query_one("#robustness", DataTable)
            await wait_for(pilot, lambda: screen.model is not None, 60, "the model")
            assert "none yet" in str(table.get_row_at(0)[2])
            await pilot.press("R")
            await wait_for(pilot, lambda: screen.robustness.job is not None and screen.robustness.job.done.is_set(), 240, "the sweep")
            # the job is done before the UI has read its last event: wait for the panel
            await wait_for(pilot, lambda: table.row_count == 5, 10, "the sweep in the panel")
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            report = json.loads((Path(run_dir) / "report.json").read_text())
            sweep = report["robustness"]["pgd-linf"]
            assert [r[1] for r in rows] == ["0.0", "1/255", "2/255", "4/255", "8/255"]
            assert [r[2] for r in rows] == [f"{a:.3f}" for a in sweep["accuracy"]]
            # the line follows the panel (the screen handles the panel's message after it refilled the table)
            await wait_for(pilot, lambda: text_of(app, "#attack-status").startswith("Robustness of "), 10, "the line")
            status = text_of(app, "#attack-status")
            assert status.startswith("Robustness of 2026")  # which run the sweep was of (issue 24 item 3)
            assert status.endswith(f": pgd-linf on {sweep['images']} images: {sweep['accuracy'][0]:.3f} "
                                   f"at 0 → {sweep['accuracy'][-1]:.3f} at 8/255")
            assert len(status) <= screen.query_one("#attack-status").content_region.width
            assert app.job_status == ""

    await run_with_timeout(scenario(), 400)


def test_robustness_rows_read_the_sweeps_in_a_report():
    from tui.attack.robustness import robustness_rows

    report = {"pgd-linf": {"eps": [0.0, 2 / 255, 8 / 255], "accuracy": [0.98, 0.5, 0.01], "rows": []},
              "fgsm-linf": {"eps": [0.0], "accuracy": [0.98]}}
    rows = robustness_rows(report)
    assert rows[:2] == [("pgd-linf", "0.0", "0.980"), ("pgd-linf", "2/255", "0.500")]
    assert ("fgsm-linf", "0.0", "0.980") in rows
    assert robustness_rows(None) == [] and robustness_rows({"x": 1}) == []


async def test_h_on_the_attack_screen_overlays_the_original_and_the_adversarial(tmp_path):

    root = make_dataset(tmp_path / "colours", {"red": 3, "blue": 3}, size=48)
    app = make_app(root)
    async with app.run_test(size=(120, 35)) as pilot:
        await scan_finished(pilot)
        await pilot.press("5")
        await pilot.pause()
        screen = app.screen
        original = str(root / "red" / "red_0.png")
        screen.set_source(original, "red")
        adversarial = MemoryImage(Image.open(root / "blue" / "blue_0.png").convert("RGB"), "adversarial")
        screen.pane_sources["adversarial"] = adversarial  # as an attack's ImageRendered leaves it
        views = {pane: screen.query_one(f"#img-{pane}", ImageView) for pane in ("original", "adversarial")}
        await pilot.press("escape", "h")
        await wait_for(pilot, lambda: all(isinstance(v.source, MemoryImage) and v.source.name.startswith("heatmap")
                                          for v in views.values()), 120, "both heatmaps")
        await pilot.press("h")
        await pilot.pause()
        assert views["original"].source == original and views["adversarial"].source is adversarial


async def test_the_attack_jobs_events_become_the_plot_the_pictures_and_the_captions(tmp_path):
    """The events engine.adversarial.attacks' job emits become the plot, the pictures and captions."""

    from engine.core.events import StepEnded
    from tui.widgets.image_view import ImageView

    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("5")
        screen = app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model info")
        assert "run " + run.name in text_of(app, "#model-line")
        # the events engine.adversarial.attacks' job emits, and its summary
        pixels = Image.new("RGB", (8, 8), (200, 30, 30)).tobytes()
        for step in range(1, 4):
            screen.post_message(JobEvent("attack", StepEnded("attack", step, 3, {"target_prob": step / 3})))
        screen.post_message(JobEvent("attack", ImageRendered("attack-adversarial", 3, None, 8, 8, pixels,
                                                             {"success": 1.0})))
        summary = {"out_dir": "runs/x/attacks/1", "results": [{
            "path": "a.png", "before": [{"class": "3", "prob": 0.98}], "after": [{"class": "8", "prob": 0.97}],
            "success": True, "linf_255": 4.0, "l2": 0.5}]}
        screen.post_message(JobEvent("attack", JobFinished("completed", summary)))
        await wait_for(pilot, lambda: len(screen.query_one("#attack-plot").history) == 3, 10, "three steps plotted")
        assert "8 0.97 · fooled" in text_of(app, "#cap-adversarial")
        assert "3 0.98" in text_of(app, "#cap-original") and "4.0/255" in text_of(app, "#cap-perturbation")
        view = screen.query_one("#img-adversarial", ImageView)
        await wait_for(pilot, lambda: view.ready, 10, "the rendered image")
        assert "3 0.98 → 8 0.97" in text_of(app, "#attack-status")


async def test_choosing_another_run_clears_the_old_runs_attack_and_relabels_the_sweeps(tmp_path):
    """Issue 24 item 3: after another run is chosen, the adversarial images, the plot, the captions and the
    status line of the previous run's attack are gone, and the robustness panel says whose sweeps it lists."""
    from pathlib import Path

    from engine.core.events import StepEnded

    first = write_run(tmp_path / "runs")
    report = json.loads((first / "report.json").read_text())
    report["robustness"] = {"pgd-linf": {"eps": [0.0, 8 / 255], "accuracy": [0.878, 0.0]}}
    (first / "report.json").write_text(json.dumps(report))
    second = write_run(tmp_path / "runs", "20260102-090000-digits-resnet18-probe")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = first
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("5")
        screen = app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model info")
        table = screen.query_one("#robustness", DataTable)
        assert [str(c) for c in table.get_row_at(1)][1:] == ["8/255", "0.000"]
        title = text_of(app, "#robustness-title")
        assert title.startswith("sweeps of 20260101")
        pixels = Image.new("RGB", (8, 8), (200, 30, 30)).tobytes()
        screen.post_message(JobEvent("attack", StepEnded("attack", 1, 1, {"target_prob": 0.5})))
        screen.post_message(JobEvent("attack", ImageRendered("attack-adversarial", 1, None, 8, 8, pixels, {})))
        summary = {"out_dir": "runs/x/attacks/1", "results": [{
            "path": "a.png", "before": [{"class": "3", "prob": 0.98}], "after": [{"class": "8", "prob": 0.97}],
            "success": True, "linf_255": 4.0, "l2": 0.5}]}
        screen.post_message(JobEvent("attack", JobFinished("completed", summary)))
        await wait_for(pilot, lambda: "fooled" in text_of(app, "#cap-adversarial"), 10, "the attack shown")

        await pilot.press("7")
        app.state.run_dir = Path(second)
        app.state.changed()
        await pilot.press("5")
        await wait_for(pilot, lambda: screen.model is not None and screen.model.run_dir == str(second), 30, "the model")
        await pilot.pause()
        assert screen.query_one("#img-adversarial", ImageView).source is None
        assert text_of(app, "#cap-adversarial") == "adversarial"
        assert screen.query_one("#attack-plot").history == []
        status = text_of(app, "#attack-status")
        assert status.startswith("Cleared the attack of ") and "fooled" not in status and "0.97" not in status
        assert "0.000" not in [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        assert text_of(app, "#robustness-title") != title and "20260102" in text_of(app, "#robustness-title")
