"""Text fields as people expect them (tui.widgets.inputs): Enter takes a shown suggestion, Tab completes, a
path suggester offers folders only when asked, and a plain SuggestFromList gets Enter too."""

from __future__ import annotations

import os

from helpers.tui import (
    burst,
    wait_for,
)

from tui.widgets.inputs import ChoiceSuggester, PathSuggester, TextField


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
