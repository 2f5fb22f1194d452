"""The Dream screen: snapshots (w) named after the class that never overwrite, maco by default and the
lesson's recipe one key away, and a gallery's contact sheet."""

from __future__ import annotations

from helpers.tui import (
    make_app,
    text_of,
    wait_for,
    write_run,
)
from PIL import Image

from engine.core.events import ImageRendered, JobFinished
from tui.messages import JobEvent

LONG_RUN = "20260101-120000-oxford-iiit-pets-efficientnet_lite0-probe"


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


async def test_the_dream_jobs_events_become_the_picture_and_w_saves_it(tmp_path):
    """The events engine.adversarial.dreams' job emits become the picture and its caption; w saves the frame."""
    from PIL import Image

    from engine.core.events import ImageRendered, StepEnded

    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("6")
        dream = app.screen
        await wait_for(pilot, lambda: dream.model is not None, 30, "the model info")
        assert "run " + run.name in text_of(app, "#model-line")
        pixels = Image.new("RGB", (8, 8), (200, 30, 30)).tobytes()
        dream.post_message(JobEvent("dream", StepEnded("dream", 25, 300, {"target_prob": 0.4})))
        dream.post_message(JobEvent("dream", ImageRendered("dream-preview", 25, None, 8, 8, pixels,
                                                           {"target_prob": 0.4})))
        await wait_for(pilot, lambda: dream.frame is not None, 10, "the dream frame")
        assert "probability 0.400" in text_of(app, "#dream-caption")
        await pilot.press("w")  # save the current frame, atomically, into the run
        await pilot.pause()
        assert list((run / "dreams").glob("*.png"))


async def test_a_gallerys_plot_draws_one_line_per_class_each_named(tmp_path):
    """Issue 24 item 7: a gallery's probabilities were one line called "class"; each class now has its own,
    named in the legend (37 Oxford-length names: shortened from the middle)."""
    from helpers.results import PETS

    from engine.core.events import StepEnded
    from tui.widgets.curves import CurvePlot

    run = write_run(tmp_path / "runs", classes=list(PETS))
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        dream = app.screen
        await wait_for(pilot, lambda: dream.model is not None, 30, "the model info")
        for step, index, prob in ((1, 3, 0.2), (2, 3, 0.5), (3, 30, 0.1), (4, 30, 0.6)):
            dream.post_message(JobEvent("dream", StepEnded("dream", step, 4, {"target_prob": prob,
                                                                           "class_index": float(index)})))
        await pilot.pause()
        await pilot.pause()
        plot = dream.query_one("#dream-plot", CurvePlot)
        labels = [label for _key, label in plot.series]
        assert len(labels) == 2 and "class" not in labels
        assert labels[0][:4] == PETS[3][:4] and labels[1][-3:] == PETS[30][-3:]  # both ends kept
        assert all(len(label) <= 18 for label in labels)
        by_key = dict(plot.series)
        drawn = {key: [r[key] for r in plot.history if key in r] for key in by_key}
        assert list(drawn.values()) == [[0.2, 0.5], [0.1, 0.6]]
