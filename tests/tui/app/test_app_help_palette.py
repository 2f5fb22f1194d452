"""Every key findable (issue 24 item 7): `?` lists the keys of a screen's own widgets (Results' matrix: d), the
palette (ctrl+p) finds every screen's actions from anywhere and runs them there, and the key bar keeps
`q ^p` at 80 columns on every screen."""

from __future__ import annotations

from helpers.tui import make_app, wait_for, write_run

from tui.keys import HelpScreen, KeysProvider, help_sections
from tui.runs.screen import RunsScreen
from tui.widgets.keybar import KeyBar


async def test_help_lists_the_matrix_keys_and_the_palette_finds_every_screens_actions(tmp_path, tiny_dataset):
    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        sections = {title: [b.key for b in bindings] for title, _text, bindings in help_sections(app)}
        assert "d" in sections["Results · matrix"]
        assert "r" in sections["Model · leaderboard (C)"] and "space" in sections["Data · audit view (a)"]
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 10, "the help")
        shown = " ".join(str(s.render()) for s in app.screen.query(".help-keys"))
        assert "Diagonal" in shown
        await pilot.press("escape")
        await pilot.pause()
        data = app.screen
        commands = {name: run for name, _help, run in KeysProvider(data)._commands()}
        for name in ("Results: Evaluate", "Runs: Export", "Model: Compare", "Dream: Dream", "Attack: Attack"):
            assert name in commands, sorted(commands)
        await commands["Runs: Sort"]()  # to the Runs screen, and sorted there
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen) and app.screen.sort_key != "date"


async def test_the_key_bar_keeps_every_key_at_80_columns(tmp_path, tiny_dataset):
    write_run(tmp_path / "runs")  # a run listed: the Runs screen's keys all apply
    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "1234567":
            await pilot.press(key)
            await pilot.pause()
            if key == "7":
                await wait_for(pilot, lambda: app.screen.query_one("#runs").row_count > 0, 30, "the run")
                await pilot.pause()
            bar = str(app.screen.query_one(KeyBar).render())
            assert len(bar) <= 80 and bar.rstrip().endswith(("q ^p", "q Quit ^p Palette")), (key, bar)
            assert "1234567" in bar and "?" in bar
