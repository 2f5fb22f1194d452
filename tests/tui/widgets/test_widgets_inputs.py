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


async def test_tab_on_an_ambiguous_prefix_completes_what_is_shared_and_lists_the_matches(tmp_path):
    """Issue 24 item 7: Tab took the first match silently; now it goes as far as the matches agree and lists
    them, as a shell does; a single match still completes at once."""
    from textual.app import App

    for name in ("american_bulldog", "american_pit_bull_terrier", "basset_hound"):
        (tmp_path / name).mkdir()

    class Two(App):
        def compose(self):
            yield TextField(id="cls", suggester=ChoiceSuggester(["Abyssinian", "american_bulldog",
                                                                 "american_pit_bull_terrier", "basset_hound"]))
            yield TextField(id="path", suggester=PathSuggester(folders_only=True))

    app = Two()
    async with app.run_test(size=(80, 24)) as pilot:
        field = app.query_one("#cls", TextField)
        field.focus()
        await burst(pilot, "a", "m", "tab")
        await wait_for(pilot, lambda: field.value == "american_", 10, "the shared part")
        assert app.focused is field  # Tab stayed: the list is shown, nothing chosen
        shown = [n.message for n in app._notifications]
        assert any("american_bulldog" in m and "american_pit_bull_terrier" in m for m in shown), shown
        await burst(pilot, "b", "tab")  # now one match: completed
        await wait_for(pilot, lambda: field.value == "american_bulldog", 10, "the one match")
        path = app.query_one("#path", TextField)
        path.focus()
        path.value = str(tmp_path / "a")
        path.cursor_position = len(path.value)
        await burst(pilot, "tab")
        await wait_for(pilot, lambda: path.value == str(tmp_path / "american_"), 10, "the shared folder part")
        assert any("american_pit_bull_terrier/" in n.message for n in app._notifications)
