"""Text entry as people type over a laggy link: keys in a burst land where focus was moving to, Tab completes
paths and suggestions, Enter takes a shown suggestion (tui.widgets.inputs, tui.app's key ordering)."""

from __future__ import annotations

import os

from textual import events
from textual.keys import _character_to_key
from tui_helpers import make_app, wait_for

from tui.data.open_dataset import AskScreen
from tui.widgets.inputs import ChoiceSuggester, PathSuggester, TextField


async def burst(pilot, *keys: str) -> None:
    """Keys as a terminal delivers a burst: all queued at once, nothing handled in between."""
    app = pilot.app
    for key in keys:
        char = key if len(key) == 1 else None
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        app.post_message(events.Key(name, char))
    await pilot.pause()
    await pilot.pause()


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
    from textual.widgets import DataTable
    from tui_helpers import write_run

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
    from textual.widgets import DataTable
    from tui_helpers import write_run

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


async def test_tab_completes_folders_in_the_open_dialog_and_enter_opens(tmp_path):
    """D6: the dialog says "tab complete": Tab completes the folder name (and steps inside), Enter opens."""
    from conftest import make_dataset

    target = make_dataset(tmp_path / "pets-dataset", {"red": 3, "blue": 3})
    (tmp_path / "other").mkdir()
    app = make_app(tmp_path / "other")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, __import__("tui.errors").errors.ErrorModal), 30,
                       "the empty dataset's error")
        await pilot.press("escape", "o")
        await wait_for(pilot, lambda: isinstance(app.screen, AskScreen), 10, "the dialog")
        field = app.screen.query_one("#ask-input", TextField)
        field.value = str(tmp_path / "pe")
        field.cursor_position = len(field.value)
        await burst(pilot, "tab")
        await wait_for(pilot, lambda: field.value == str(target) + os.sep, 10, "the completed folder")
        assert "tab complete" in app.screen.hint
        await burst(pilot, "tab")  # inside: the first class folder is offered next
        await wait_for(pilot, lambda: field.value == str(target / "blue") + os.sep, 10, "the sub-folder")
        field.value = str(target) + os.sep  # an existing folder: Enter opens it, not the suggested sub-folder
        field.cursor_position = len(field.value)
        await burst(pilot, "enter")
        await wait_for(pilot, lambda: app.state.info is not None and app.state.info.name == "pets-dataset", 30,
                       "the dataset")


async def test_enter_takes_the_shown_suggestion_in_a_choice_field():
    """D6: "ca" + Enter submits "cat" (not "ca"); an exact choice stays itself; any case becomes canonical."""
    from textual.app import App

    submitted: list[str] = []

    class One(App):
        def compose(self):
            yield TextField(id="cls", suggester=ChoiceSuggester(["caterpillar", "cat", "Dog"]))
            yield TextField(id="other")

        def on_input_submitted(self, event):
            submitted.append(event.value)

    app = One()
    async with app.run_test() as pilot:
        field = app.query_one("#cls", TextField)
        field.focus()
        for keys, expected in ((("c", "a", "t"), "cat"), (("c", "a"), "caterpillar"), (("d",), "Dog"),
                               (("C", "A", "T"), "cat")):
            field.value = ""
            before = len(submitted)
            await burst(pilot, *keys, "enter")
            await wait_for(pilot, lambda n=before + 1: len(submitted) == n, 10, f"{keys} submitted")
            assert submitted[-1] == expected
            assert field.value == expected
        field.value = ""
        await burst(pilot, "d", "tab")  # Tab accepts the suggestion and stays
        await wait_for(pilot, lambda: field.value == "Dog", 10, "Tab's completion")
        assert app.focused is field
        await burst(pilot, "tab")  # nothing left to complete: Tab moves on
        await wait_for(pilot, lambda: app.focused is app.query_one("#other"), 10, "the next field")


async def test_path_suggester_offers_folders_only_when_asked(tmp_path):
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alps.txt").write_text("x")
    folders, anything = PathSuggester(folders_only=True), PathSuggester()
    assert await folders.get_suggestion(str(tmp_path / "alp")) == str(tmp_path / "alpha") + os.sep
    assert await anything.get_suggestion(str(tmp_path / "alps")) == str(tmp_path / "alps.txt")
    assert await folders.get_suggestion(str(tmp_path / "alpha")) == str(tmp_path / "alpha") + os.sep
    assert folders.is_complete(str(tmp_path / "alpha")) and not folders.is_complete(str(tmp_path / "alps.txt"))


async def test_a_plain_suggest_from_list_gets_enter_too():
    """Attack's and Dream's class fields set Textual's SuggestFromList on a TextField: Enter takes it too."""
    from textual.app import App
    from textual.suggester import SuggestFromList

    submitted: list[str] = []

    class One(App):
        def compose(self):
            yield TextField(id="cls")

        def on_input_submitted(self, event):
            submitted.append(event.value)

    app = One()
    async with app.run_test() as pilot:
        field = app.query_one("#cls", TextField)
        field.suggester = SuggestFromList(["green", "blue", "red"], case_sensitive=False)
        field.focus()
        await burst(pilot, "g", "r", "enter")
        await wait_for(pilot, lambda: submitted == ["green"], 10, "green")
        field.value = ""
        await burst(pilot, "R", "E", "D", "enter")  # a whole choice, in the list's own spelling
        await wait_for(pilot, lambda: len(submitted) == 2, 10, "red")
        assert submitted[-1] == "red"
