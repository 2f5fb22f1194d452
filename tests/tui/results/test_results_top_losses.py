"""`L` on Results: the top losses over the whole screen (plot_top_losses), "true → predicted p%" under each,
their Grad-CAM heatmaps replacing the plain pictures as they come; `h` toggles them, `z` zooms."""

from __future__ import annotations

from helpers.results import pets_app
from helpers.tui import SIZES, all_loaded, settle, wait_for, wait_thumbnails
from PIL import Image

import tui.results.top_losses as top_losses
from tui.results.top_losses import TopLossesScreen
from tui.widgets.image_view import ImageView, ZoomScreen
from tui.widgets.thumbnails import MemoryImage


def fake_heatmaps(monkeypatch, fail: str = "") -> list[str]:
    """Grad-CAM needs a trained model; this one tints each image red and records which it was asked for."""
    asked: list[str] = []

    def overlay(path, run_dir, *args, **kwargs):
        if fail:
            raise RuntimeError(fail)
        asked.append(path)
        with Image.open(path) as img:
            base = img.convert("RGB")
        heat = Image.blend(base, Image.new("RGB", base.size, (230, 20, 20)), 0.45)
        return MemoryImage(heat, f"heatmap {path}"), "Grad-CAM"

    monkeypatch.setattr(top_losses, "heatmap_overlay", overlay)
    return asked


async def open_top_losses(pilot) -> TopLossesScreen:
    await all_loaded(pilot)
    await pilot.press("4")
    await wait_for(pilot, lambda: pilot.app.screen.view is not None, 30, "the report")
    await pilot.press("L")
    screen = pilot.app.screen
    assert isinstance(screen, TopLossesScreen)
    await wait_for(pilot, lambda: screen.grid.has_focus, 10, "the grid's focus")
    await wait_for(pilot, lambda: screen.heat_done == len(screen.rows) or screen.heat_error, 30, "the heatmaps")
    await wait_thumbnails(pilot, screen.grid)
    await settle(pilot)
    return screen


async def test_top_losses_show_true_predicted_and_the_heatmap_of_each(tmp_path, monkeypatch):
    asked = fake_heatmaps(monkeypatch)
    app, run, _data = pets_app(tmp_path, monkeypatch)
    async with app.run_test(size=(120, 35)) as pilot:
        screen = await open_top_losses(pilot)
        report_rows = app.screen.rows
        grid = screen.losses
        # every mistake of the report, in its order, each captioned true → predicted p%
        assert [t.path for t in grid.items] == [r["path"] for r in report_rows] and report_rows
        first = report_rows[0]
        assert f"true {first['true']} → predicted {first['predicted']} {100 * first['prob_predicted']:.0f}%" in \
            grid.items[0].caption
        # a heatmap asked for each and drawn in place of the picture
        assert asked == [r["path"] for r in report_rows]
        assert isinstance(grid.key(0)[0], MemoryImage)
        assert "Grad-CAM of the predicted class" in screen.title_text
        await pilot.press("h")
        assert grid.key(0)[0] == first["path"] and "plain pictures" in screen.title_text
        await pilot.press("h", "z")
        assert isinstance(app.screen, ZoomScreen)
        assert app.screen.query_one(ImageView).source is grid.overlays[first["path"]]
        await pilot.press("escape", "escape")
        assert not isinstance(app.screen, TopLossesScreen)


async def test_top_losses_say_why_there_is_no_heatmap(tmp_path, monkeypatch):
    fake_heatmaps(monkeypatch, fail="no best.pt in the run")
    app, _run, _data = pets_app(tmp_path, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_top_losses(pilot)
        assert "no heatmaps: no best.pt in the run" in screen.title_text
        assert screen.losses.key(0)[0] == screen.rows[0]["path"]  # the plain pictures stay


@SIZES
def test_top_losses_snapshot(snap_compare, size, tmp_path, monkeypatch):
    fake_heatmaps(monkeypatch)
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await open_top_losses(pilot)
        await pilot.press("right")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_top_loss_zoomed_snapshot(snap_compare, size, tmp_path, monkeypatch):
    """z on the highlighted top loss: its heatmap over the whole screen, "true → predicted" above it."""
    fake_heatmaps(monkeypatch)
    app, _run, _data = pets_app(tmp_path, monkeypatch)

    async def before(pilot):
        await open_top_losses(pilot)
        await pilot.press("z")
        view = pilot.app.screen.query_one(ImageView)
        await wait_for(pilot, lambda: view.ready, 30, "the zoom")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)
