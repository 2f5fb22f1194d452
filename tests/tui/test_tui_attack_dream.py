"""Attack and Dream at 80x24: status lines whose paths shrink from the middle instead of wrapping out of
sight, the untargeted attack's plot, the robustness sweep from the keyboard, and Dream's snapshot key."""

from __future__ import annotations

import json

import pytest
from conftest import make_dataset
from PIL import Image
from textual.widgets import DataTable, Static
from tui_helpers import make_app, run_with_timeout, wait_for, write_run

from engine.core.events import ImageRendered, JobFinished
from engine.core.jobs import run_job
from engine.train.config import TrainConfig
from engine.train.job import train
from tui.messages import JobEvent

LONG_RUN = "20260101-120000-oxford-iiit-pets-efficientnet_lite0-probe"


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


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
            status = text_of(app, "#attack-status")
            assert status.startswith(f"Robustness pgd-linf on {sweep['images']} images: {sweep['accuracy'][0]:.3f} "
                                     f"at 0 → {sweep['accuracy'][-1]:.3f} at 8/255")
            assert len(status) <= screen.query_one("#attack-status").content_region.width
            assert app.job_status == ""

    await run_with_timeout(scenario(), 400)


async def test_dream_snapshots_are_named_after_the_class_and_never_overwrite(tmp_path):
    """D14: w kept dreams/dream-80.png (the step, not the class) and overwrote it; the job saves the final
    image itself. Now w keeps the forming image as <class>-step<N>.png, -2, -3 …; after the job saved its
    image, w names that file instead of writing another."""
    from tui.dream.screen import DreamRequest

    run = write_run(tmp_path / "runs", LONG_RUN, classes=["Abyssinian", "yorkshire_terrier", "pug"], report=False)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        dream = app.screen
        await wait_for(pilot, lambda: dream.model is not None, 30, "the model info")
        dream.prepare(DreamRequest("YORKSHIRE_TERRIER", 300, None, 0, "robust", str(run), ""))
        pixels = Image.new("RGB", (8, 8), (200, 30, 30)).tobytes()
        dream.post_message(JobEvent("dream", ImageRendered("dream-preview", 75, None, 8, 8, pixels,
                                                           {"target_prob": 0.4})))
        await wait_for(pilot, lambda: dream.frame is not None, 10, "the frame")
        await pilot.press("w", "w")
        await pilot.pause()
        saved = sorted(p.name for p in (run / "dreams").glob("*.png"))
        assert saved == ["yorkshire_terrier-step75-2.png", "yorkshire_terrier-step75.png"]
        final = str(run / "dreams" / "20260101-120600-yorkshire_terrier-robust.png")
        Image.new("RGB", (8, 8)).save(final)  # what the job writes
        dream.post_message(JobEvent("dream", JobFinished("completed", {"path": final, "probability": 0.93,
                                                                       "rank": 1})))
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        assert len(list((run / "dreams").glob("*.png"))) == 3
        assert any("saved already" in n.message for n in app._notifications)
        status = text_of(app, "#dream-status")
        width = dream.query_one("#dream-status").content_region.width
        assert status.startswith("completed · probability 0.930 (rank 1) · saved ")
        assert len(status) <= width and "…" in status and status.endswith("terrier-robust.png")


async def test_dream_defaults_to_maco_l_switches_to_the_lesson_and_the_gallery_shows(tmp_path):
    """Issue 15: the Dream screen starts on maco with the recipe's own steps; l switches to the lesson's recipe
    (saying why it fools only its own network) and back; a gallery job's contact sheet becomes the picture,
    its class captions follow the class being dreamed, and the status counts the dreams Lite2 recognised."""
    from textual.widgets import Select

    from engine.adversarial.params import LESSON_WHY
    from tui.dream.screen import DreamRequest

    run = write_run(tmp_path / "runs", LONG_RUN, classes=["Abyssinian", "yorkshire_terrier", "pug"], report=False)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        dream = app.screen
        await wait_for(pilot, lambda: dream.model is not None, 30, "the model info")
        dream.query_one("#dream-class").value = "pug, Abyssinian"
        request = dream.read_params()
        assert request.recipe == "maco" and request.steps is None and request.target == "pug, Abyssinian"
        await pilot.press("l")
        await pilot.pause()
        assert dream.query_one("#dream-recipe", Select).value == "lesson"
        assert any(n.message == LESSON_WHY for n in app._notifications)
        await pilot.press("l")
        await pilot.pause()
        assert dream.query_one("#dream-recipe", Select).value == "maco"
        dream.prepare(DreamRequest("pug, Abyssinian", None, None, 0, "maco", str(run), ""))
        tile = Image.new("RGB", (8, 8), (200, 30, 30)).tobytes()
        dream.post_message(JobEvent("dream", ImageRendered("dream", 64, None, 8, 8, tile,
                                                           {"target_prob": 0.9, "class_index": 2.0})))
        await pilot.pause()
        assert text_of(app, "#dream-caption").startswith("pug · probability 0.900")
        sheet = str(run / "dreams" / "20260101-120600-gallery-maco.png")
        pixels = Image.new("RGB", (16, 8), (30, 30, 200)).tobytes()
        dream.post_message(JobEvent("dream", ImageRendered("dream-gallery", 2, sheet, 16, 8, pixels)))
        await wait_for(pilot, lambda: dream.frame is not None and dream.frame.image.size == (16, 8), 10, "the sheet")
        assert "gallery of 2" in text_of(app, "#dream-caption") and dream.saved == sheet
        dream.post_message(JobEvent("dream", JobFinished("completed", {
            "path": sheet, "dreams": [{}, {}], "recognised": 1, "judged": 2})))
        await pilot.pause()
        assert text_of(app, "#dream-status").startswith("completed · 2 dreams, 1 ranked first by the judge")
