"""Keys as people type them over a laggy link: keys in a burst land where focus was moving to (tui.app's key
ordering), Enter and Escape give the keys back to the screen, and arrows right after Escape still move a list."""

from __future__ import annotations

from helpers.data import DEMO
from helpers.tui import (
    burst,
    make_app,
    run_with_timeout,
    wait_for,
    write_run,
)
from textual.widgets import DataTable

from tui.widgets.inputs import TextField


async def open_model_form(pilot):
    app = pilot.app
    await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
    await pilot.press("2")
    await wait_for(pilot, lambda: bool(app.screen.query("#form")), 120, "the form")
    await pilot.pause()


async def test_keys_typed_in_a_burst_after_tab_land_in_the_next_field(tiny_dataset):
    """D8: `Tab 0 . 0 2` typed at once puts 0.002 into the field Tab moved to, not the one it left."""
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        await open_model_form(pilot)
        batch = app.screen.query_one("#field-batch_size", TextField)
        batch.focus()
        await pilot.pause()
        await burst(pilot, "tab", "0", ".", "0", "2")
        await wait_for(pilot, lambda: app.screen.query_one("#field-lr", TextField).value.endswith("0.02"), 10,
                       "the typed value in lr")
        assert batch.value == "64"
        assert app.focused is app.screen.query_one("#field-lr")
        # and Esc followed at once by a screen key: the key is a command again, not text in the field
        await burst(pilot, "escape", "3")
        await wait_for(pilot, lambda: app.current_mode == "train", 10, "the Train screen")
        assert app.state.config.get("lr") is None or "3" not in str(app.state.config.get("lr"))


async def test_enter_typed_in_a_burst_gives_the_next_key_to_the_screen(tiny_dataset):
    """Enter in a field, then a screen key in the same burst: the key switches screens."""
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        await open_model_form(pilot)
        epochs = app.screen.query_one("#field-epochs", TextField)
        epochs.focus()
        await pilot.pause()
        await burst(pilot, "7", "enter", "3")
        await wait_for(pilot, lambda: app.current_mode == "train", 10, "the Train screen")
        assert epochs.value == "7" and app.state.config["epochs"] == 7


async def test_arrows_typed_right_after_escape_move_the_runs_cursor(tmp_path):
    """D8: Esc closing a run's details, then arrows at once: the arrows move the list's cursor and it stays."""

    root = tmp_path / "runs"
    for day in range(1, 5):
        write_run(root, f"2026010{day}-120000-digits-efficientnet_lite0-probe", created=f"2026-01-0{day}T12:00:00+0000")
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("7")
        table = app.screen.query_one("#runs", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, 30, "the runs")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "RunDetailScreen", 10, "the details")
        await burst(pilot, "escape", "down", "down")
        await wait_for(pilot, lambda: app.screen.TAB == "runs" if hasattr(app.screen, "TAB") else False, 10, "Runs")
        await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert table.cursor_row == 2


async def test_escape_on_a_list_keeps_it_focused_so_arrows_still_move(tmp_path):
    """D8: Esc where no field is being edited (the Runs list) must not take focus away: arrows keep working."""

    root = tmp_path / "runs"
    for day in range(1, 5):
        write_run(root, f"2026010{day}-120000-digits-efficientnet_lite0-probe", created=f"2026-01-0{day}T12:00:00+0000")
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("7")
        table = app.screen.query_one("#runs", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, 30, "the runs")
        await burst(pilot, "escape", "down", "down")
        await pilot.pause(0.3)
        assert table.cursor_row == 2 and app.focused is table


async def test_enter_in_a_field_gives_the_keys_back_to_the_screen(tmp_path):
    """Typing a target then Enter: the next key is a command again (2 switches to Model), not more text."""
    app = make_app(DEMO, runs_dir=str(tmp_path / "runs"))

    async def scenario():
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("5", "c", "7")
            field = app.focused
            assert field is not None and field.value == "7"
            await pilot.press("enter", "2")
            await pilot.pause()
            assert field.value == "7" and app.screen.TAB == "model"

    await run_with_timeout(scenario(), 60)
