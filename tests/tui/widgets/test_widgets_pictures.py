"""Pictures through each protocol: the Sixel and Kitty sequences reach what the app writes to the terminal when
the protocol is forced, half blocks otherwise; and the zoom (`z`) over the grid and the preview."""

from __future__ import annotations

import pytest
from helpers.tui import all_drawn, make_app, settle, wait_for, wait_thumbnails
from PIL import Image

from tui.widgets.image_view import ImageView, ZoomScreen
from tui.widgets.pictures import Pictures, kitty_strips, sixel_strips, tmux_passthrough, without_graphics

SIXEL_START = "\x1bP"  # a DCS: the Sixel data
KITTY_START = "\x1b_Ga=T,U=1,f=100"  # an APC: a PNG sent with a virtual placement
PLACEHOLDER = "\U0010eeee"


def terminal_output(app) -> str:
    """Everything the app would write to the terminal to draw its current screen."""
    update = app.screen._compositor.render_full_update()
    return update.render_segments(app.console)


async def open_preview(pilot):
    await all_drawn(pilot)
    await pilot.press("g", "right", "enter")
    image = pilot.app.screen.query_one("#preview-image", ImageView)
    await wait_for(pilot, lambda: image.ready, 30, "the preview")
    await settle(pilot)
    return image


def picture(size=(40, 30)) -> Image.Image:
    img = Image.new("RGB", size, (200, 30, 30))
    img.paste((20, 20, 220), (0, 0, size[0] // 2, size[1]))
    return img


async def test_sixel_forced_writes_sixel_data_where_the_picture_is(monkeypatch):
    monkeypatch.setenv("TLBENCH_IMAGES", "sixel")
    app = make_app()
    assert app.pictures.protocol == "sixel"
    async with app.run_test(size=(100, 30)) as pilot:
        image = await open_preview(pilot)
        out = terminal_output(app)
        assert SIXEL_START in out and out.count(SIXEL_START) >= 1
        # the raster attributes: the picture's box in pixels, cells x the cell size (10x20 unless measured)
        w, h = image.content_size
        assert f'"1;1;{w * 10};{h * 20}' in out
        assert KITTY_START not in out


async def test_sixel_thumbnails_reach_the_terminal_whole_beside_a_scrollbar(monkeypatch):
    """Every whole thumbnail's Sixel survives Textual's line filter and the compositor's cuts (the grid has a
    scrollbar beside it): one complete DCS … ST each, none cut short."""
    monkeypatch.setenv("TLBENCH_IMAGES", "sixel")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await all_drawn(pilot)
        await pilot.press("g")
        grid = app.screen.query_one("#thumbs")
        await wait_thumbnails(pilot, grid)
        height = grid.scrollable_content_region.height
        whole_rows = (height + 1) // grid.slot_h  # the caption line of the last row may be cut
        whole = min(len(grid.items), whole_rows * grid.columns)
        out = terminal_output(app)
        assert whole >= 2 and out.count(SIXEL_START) == whole
        assert out.count("\x1b7") >= whole  # each drawn from its saved cursor …
        for chunk in out.split(SIXEL_START)[1:]:
            assert "\x1b\\" in chunk  # … and ended (ST), not cut where the screen is divided


async def test_kitty_forced_sends_the_png_and_draws_placeholders(monkeypatch):
    monkeypatch.setenv("TLBENCH_IMAGES", "kitty")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        image = await open_preview(pilot)
        out = terminal_output(app)
        assert KITTY_START in out
        w, h = image.content_size
        assert f"c={w},r={h}" in out
        # one placeholder a cell of the preview's picture at least (the thumbnails behind the modal add theirs)
        assert out.count(PLACEHOLDER) >= w * h
        assert SIXEL_START not in out


async def test_halfblock_draws_cells_and_no_graphics(monkeypatch):
    monkeypatch.setenv("TLBENCH_IMAGES", "halfblock")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await open_preview(pilot)
        out = terminal_output(app)
        assert "▄" in out or "▀" in out
        assert SIXEL_START not in out and KITTY_START not in out and PLACEHOLDER not in out


def test_a_wrong_images_value_is_refused_by_name(monkeypatch):
    from engine.core.errors import ConfigError

    monkeypatch.setenv("TLBENCH_IMAGES", "iterm")
    with pytest.raises(ConfigError, match="TLBENCH_IMAGES='iterm'.*kitty, sixel, halfblock"):
        make_app()


def test_sixel_strips_draw_from_the_corner_inside_the_box():
    strips = sixel_strips(picture(), 6, 4, (0, 0, 0), (10, 20))
    assert [s.cell_length for s in strips] == [6] * 4
    assert not any(seg.control for s in strips[:-1] for seg in s)
    control = "".join(seg.text for seg in strips[-1] if seg.control)
    # saved, moved left 5 and up 3 to the top-left cell (before the last cell: no pending wrap), restored
    assert control.startswith("\x1b7\x1b[5D\x1b[3A" + SIXEL_START) and control.endswith("\x1b8")
    assert '"1;1;60;80' in control
    assert not any(seg.control for seg in without_graphics(strips[-1]))


def test_kitty_strips_name_each_cell_by_row_and_column():
    strips = kitty_strips(picture(), 3, 2, None, (10, 20), image_id=0x010203)
    assert [s.cell_length for s in strips] == [3, 3]
    first = [seg for seg in strips[0] if seg.control]
    assert len(first) == 1 and "i=66051,c=3,r=2" in first[0].text
    cells = [seg for seg in strips[1] if not seg.control][0]
    assert cells.text.count(PLACEHOLDER) == 3
    assert cells.style is not None and cells.style.color is not None
    assert cells.style.color.triplet is not None and tuple(cells.style.color.triplet) == (1, 2, 3)


async def test_z_zooms_the_highlighted_thumbnail_to_the_screen(monkeypatch):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await all_drawn(pilot)
        await pilot.press("g", "right")
        grid = app.screen.query_one("#thumbs")
        await wait_thumbnails(pilot, grid)
        chosen = grid.items[grid.cursor]
        await pilot.press("z")
        assert isinstance(app.screen, ZoomScreen)
        view = app.screen.query_one(ImageView)
        assert view.source == chosen.path
        await wait_for(pilot, lambda: view.ready, 30, "the zoom")
        # as large as the screen allows: the whole width, all lines but the caption and the key bar
        assert view.content_size.width == 80 and view.content_size.height == 22
        assert grid.cell_w < view.content_size.width
        await pilot.press("z")
        assert not isinstance(app.screen, ZoomScreen)


async def test_z_in_the_preview_zooms_what_it_shows():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        image = await open_preview(pilot)
        await pilot.press("z")
        assert isinstance(app.screen, ZoomScreen)
        zoomed = app.screen.query_one(ImageView)
        assert zoomed.source == image.source
        assert zoomed.content_size.height > image.content_size.height
        await pilot.press("escape")
        assert app.screen.query_one("#preview-image", ImageView) is image


def test_pictures_default_is_what_the_environment_says(monkeypatch):
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.setenv("TLBENCH_IMAGES", "sixel")
    assert make_app().pictures == Pictures("sixel", reason="forced by TLBENCH_IMAGES=sixel")


def test_kitty_in_tmux_passes_the_png_through_and_keeps_the_placeholders():
    plain = kitty_strips(picture(), 3, 2, None, (10, 20), image_id=7)
    wrapped = kitty_strips(picture(), 3, 2, None, (10, 20), image_id=7, tmux=True)
    sent = "".join(seg.text for seg in plain[0] if seg.control)
    through = "".join(seg.text for seg in wrapped[0] if seg.control)
    assert through.startswith("\x1bPtmux;\x1b\x1b_G") and through == "".join(
        tmux_passthrough(part + "\x1b\\") for part in sent.split("\x1b\\") if part)
    assert [seg.text for seg in wrapped[1]] == [seg.text for seg in plain[1]]


async def test_z_and_a_click_zoom_the_pictures_of_a_screen_without_a_grid(tmp_path):
    """Attack: z zooms the first picture shown (the original); a click zooms the one clicked."""
    from helpers.data import make_dataset
    from helpers.tui import scan_finished

    from tui.widgets.thumbnails import MemoryImage

    root = make_dataset(tmp_path / "colours", {"red": 2, "blue": 2}, size=32)
    app = make_app(root)
    async with app.run_test(size=(120, 35)) as pilot:
        await scan_finished(pilot)
        await pilot.press("5")
        await pilot.pause()
        screen = app.screen
        original = str(root / "red" / "red_0.png")
        screen.set_source(original, "red")
        await pilot.press("escape", "z")
        assert isinstance(app.screen, ZoomScreen) and app.screen.query_one(ImageView).source == original
        await pilot.press("escape")
        adversarial = MemoryImage(picture(), "adversarial")
        pane = screen.query_one("#img-adversarial", ImageView)
        pane.show(adversarial)
        await pilot.pause()
        await pilot.click("#img-adversarial")
        assert isinstance(app.screen, ZoomScreen) and app.screen.query_one(ImageView).source is adversarial
        await pilot.click("#zoom-image")  # a click inside the zoom does not open another
        assert len([s for s in app.screen_stack if isinstance(s, ZoomScreen)]) == 1


async def test_moving_the_cursor_redraws_captions_not_pictures(monkeypatch):
    """An arrow key repaints the two captions only: a Sixel thumbnail is ~24 KB sent again otherwise."""
    from tui.widgets.grid import ThumbnailGrid

    monkeypatch.setenv("TLBENCH_IMAGES", "sixel")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await all_drawn(pilot)
        await pilot.press("g")
        grid = app.screen.query_one("#thumbs", ThumbnailGrid)
        await wait_thumbnails(pilot, grid)
        drawn: list[int] = []
        real = grid._image_line
        monkeypatch.setattr(grid, "_image_line", lambda row, line, width: drawn.append(row) or real(row, line, width))
        before = str(grid.render_line(grid.cell_h))
        await pilot.press("right")
        await settle(pilot)
        assert grid.cursor == 1 and str(grid.render_line(grid.cell_h)) != before  # the captions did change
        assert drawn == []
        await pilot.press("down")  # to the next row, still on the screen: no picture either
        await settle(pilot)
        assert drawn == []


async def test_a_zoomed_heatmaps_caption_keeps_the_class_and_its_probability_when_narrow(tmp_path):
    """The zoom of a Grad-CAM overlay (preview `h`, Results, Attack) at 60 columns: the model's long name gives
    way, the class and "17%" stay."""
    from helpers.tui import text_of

    from tui.heatmap import HeatCaption
    from tui.widgets.thumbnails import MemoryImage

    caption = HeatCaption("american_pit_bull_terrier", 0.17, "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k")
    app = make_app(tmp_path / "none")
    async with app.run_test(size=(60, 20)) as pilot:
        app.push_screen(ZoomScreen(app.thumbnails, MemoryImage(picture(), "heat"), caption))
        await pilot.pause()
        line = text_of(app, "#zoom-caption")
        assert "american_pit_bull_terrier 17%" in line and len(line) <= 58, line


def test_a_thumbnail_wanted_again_while_its_skip_is_decided_is_still_drawn():
    """The race behind a grid that waited forever for a thumbnail under load: the pool decided to skip a key no
    longer visible while the grid asked for it again; the new request saw it queued and did nothing."""
    import threading
    import time

    from tui.widgets.thumbnails import MemoryImage, ThumbnailCache

    cache = ThumbnailCache(lambda source, px: picture(), threads=1)
    key = (MemoryImage(picture(), "p"), 8, 4, None)
    asked_again = []

    def wanted_first(k):
        # the grid scrolls back while the pool thread decides: it asks again from its own thread
        asking = threading.Event()

        def ask_again():
            asking.set()
            asked_again.append(cache.request([k], lambda _k: True, lambda: None))

        ui = threading.Thread(target=ask_again)
        ui.start()
        asking.wait(5)  # the request is under way (a slow machine must not let this decision finish first)
        ui.join(0.3)
        return False  # the decision taken on what was visible before

    cache.request([key], wanted_first, lambda: None)
    deadline = time.monotonic() + 10
    while cache.get(key) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.get(key) is not None, "the thumbnail asked for again was never drawn"
    cache.shutdown()
