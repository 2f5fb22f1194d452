"""`b` on the Data screen: a batch of the training data with its labels (show_batch), drawn from the train side
of the split; `b` again draws the next batch, `z` zooms."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tui import SIZES, all_drawn, make_app, settle, wait_for, wait_thumbnails

from tui.data.batch import BatchScreen
from tui.widgets.image_view import ImageView, ZoomScreen

pytestmark = pytest.mark.usefixtures("in_repo")


async def open_batch(pilot) -> BatchScreen:
    await all_drawn(pilot)
    await pilot.press("b")
    screen = pilot.app.screen
    assert isinstance(screen, BatchScreen)
    await wait_for(pilot, lambda: screen.grid.has_focus, 10, "the grid's focus")
    await wait_thumbnails(pilot, screen.grid)
    await settle(pilot)
    return screen


async def test_a_batch_is_training_images_each_with_its_label(pets):
    app = make_app(pets, config={"batch_size": 12})
    async with app.run_test(size=(120, 35)) as pilot:
        screen = await open_batch(pilot)
        sides = app.screen_stack[-2].split["sides"]
        first = [t.path for t in screen.grid.items]
        assert len(first) == 12 and len(set(first)) == 12
        for thumb in screen.grid.items:
            assert sides[thumb.path] == "train"  # never a validation image
            assert thumb.caption == thumb.label == Path(thumb.path).parent.name  # its folder is its class
        train = sum(1 for side in sides.values() if side == "train")
        assert f"12 of {train} images" in screen.title_text
        await pilot.press("b")
        await wait_thumbnails(pilot, screen.grid)
        second = [t.path for t in screen.grid.items]
        assert len(second) == 12 and second != first and "batch 2" in screen.title_text
        chosen = screen.grid.items[screen.grid.cursor]
        await pilot.press("z")
        assert isinstance(app.screen, ZoomScreen) and app.screen.query_one(ImageView).source == chosen.path
        await pilot.press("escape", "escape")
        assert not isinstance(app.screen, BatchScreen)


@SIZES
def test_batch_snapshot(snap_compare, size, pets):
    async def before(pilot):
        await open_batch(pilot)

    assert snap_compare(make_app(pets, config={"batch_size": 16}), terminal_size=size, run_before=before)


async def test_enter_previews_the_batch_image_and_comes_back(pets):
    from tui.widgets.preview import PreviewScreen

    app = make_app(pets, config={"batch_size": 8})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_batch(pilot)
        await pilot.press("right", "enter")
        assert isinstance(app.screen, PreviewScreen)
        assert app.screen.items[app.screen.index].path == screen.grid.items[1].path
        await pilot.press("right", "escape")
        assert app.screen is screen and screen.grid.cursor == 2
