"""Nothing cut at 80x24 on the Attack screen (issue 24 item 7), with Oxford-length names: the source field shows
its file name, a Grad-CAM caption keeps its class and probability, and the sweep's "saved in" never goes
without its path."""

from __future__ import annotations

from helpers.results import PETS
from helpers.tui import make_app, text_of, wait_for, write_run
from PIL import Image

from engine.core.events import JobFinished
from tui.attack.robustness import RobustnessPanel
from tui.heatmap import HeatCaption
from tui.messages import JobEvent
from tui.widgets.thumbnails import MemoryImage

LONG_RUN = "20260101-120000-oxford-iiit-pets-efficientnet_lite0-probe"


async def test_attack_source_caption_and_sweep_line_keep_what_matters_at_80x24(tmp_path):
    run = write_run(tmp_path / "runs", LONG_RUN, classes=list(PETS))
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        screen = app.screen
        await wait_for(pilot, lambda: screen.model is not None, 30, "the model info")
        path = f"/home/someone/data/oxford-iiit-pet/images/{'american_pit_bull_terrier'}/american_pit_bull_terrier_117.jpg"
        screen.set_source(path, "american_pit_bull_terrier")
        await pilot.pause()
        await pilot.pause()
        field = screen.query_one("#attack-source")
        assert len(path) > field.content_region.width  # too long for the field …
        assert field.scroll_x > 0 and field.cursor_position == len(path)  # … so it shows its end: the file name

        # a Grad-CAM caption in a pane a third of the screen wide: the class (from its middle) and the %
        image = MemoryImage(Image.new("RGB", (8, 8)), "heatmap x")
        screen.heatmap = True
        screen.pane_sources["original"] = path
        screen.heatmap_ready("original", path, image, HeatCaption("staffordshire_bull_terrier", 0.934,
                                                                  f"run {LONG_RUN}"))
        await pilot.pause()
        caption = text_of(app, "#cap-original")
        width = screen.query_one("#cap-original").content_region.width
        assert len(caption) <= width and "93%" in caption and caption.startswith("staf"), caption

        # the sweep's line: "saved in" comes with its path, or neither comes
        panel = screen.query_one(RobustnessPanel)
        rows = [{"accuracy": 0.878, "eps_text": "0"}, {"accuracy": 0.0, "eps_text": "8/255"}]
        panel.post_message(JobEvent("robustness", JobFinished("completed", {
            "rows": rows, "key": "pgd-linf", "images": 74, "run_dir": str(tmp_path / "runs" / LONG_RUN)})))
        await pilot.pause()
        await pilot.pause()
        status = text_of(app, "#attack-status")
        # the run's name may be shortened in the middle; the numbers never are
        assert status.startswith("Robustness of "), status
        assert "pgd-linf on 74 images: 0.878 at 0 → 0.000 at 8/255" in status, status
        assert ("saved in" in status) == status.endswith("report.json"), status
        assert len(status) <= screen.query_one("#attack-status").content_region.width
