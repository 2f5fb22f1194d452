"""Issue 24 items 5 and 6 on the Runs screen: each kind of folder shown as what it is (an lr-find, a comparison,
an audit are not failed training runs), named after the dataset, an auto run's winning recipe and leaderboard,
a resumed run's whole history, and `y`, the command line that runs a folder's job again."""

from __future__ import annotations

from helpers.results import AUDIT, AUTO_RUN, COMPARE, LR_FIND, PETS_RUN, pets_app, write_run_kinds
from helpers.tui import text_of, wait_for
from textual.widgets import DataTable, Static

ORDER = [AUDIT, COMPARE, LR_FIND, AUTO_RUN, PETS_RUN]  # newest first


async def open_runs(pilot) -> DataTable:
    await pilot.press("7")
    await wait_for(pilot, lambda: len(getattr(pilot.app.screen, "views", [])) == len(ORDER), 30, "the runs")
    await pilot.pause()
    return pilot.app.screen.query_one("#runs", DataTable)


async def test_each_kind_of_run_is_shown_as_what_it_is(tmp_path, monkeypatch):
    app, run, data = pets_app(tmp_path, monkeypatch)
    write_run_kinds(tmp_path / "runs", data)
    async with app.run_test(size=(120, 35)) as pilot:
        table = await open_runs(pilot)
        assert [v.name for v in app.screen.views] == ORDER
        shown = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[4] for r in shown] == ["audit", "compare", "lr-find", "auto", "probe"]
        assert [r[7] for r in shown] == ["done"] * 5  # none of them "failed"
        assert [r[2] for r in shown[:4]] == ["oxford-iiit-pet-images"] * 4  # not "images"
        await pilot.press("down", "down")  # the lr-find
        await pilot.pause()
        assert "suggested lr 0.0031" in text_of(app, "#runs-status")
        await pilot.press("u")  # no model to use
        await pilot.pause()
        assert app.state.run_dir == run
        await pilot.press("x")  # nor to export: no dialog, a warning that says why
        await pilot.pause()
        assert app.screen.__class__.__name__ == "RunsScreen"
        assert any("No training run to export" in n.message for n in app._notifications)


async def test_y_copies_the_command_that_runs_the_job_again(tmp_path, monkeypatch):
    app, run, data = pets_app(tmp_path, monkeypatch)
    write_run_kinds(tmp_path / "runs", data)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(pilot)
        await pilot.press("down", "y")  # the comparison
        await pilot.pause()
        assert app.clipboard == ("tlbench compare /data/oxford-iiit-pet/images "
                                 "--backbones efficientnet_lite2,efficientnet_lite0")
        await pilot.press("end", "y")  # the probe run: the reproduce line the HTML report shows
        await pilot.pause()
        assert app.clipboard.startswith("tlbench train /data/oxford-pets ") and "--mode" not in app.clipboard
        assert "--epochs 5" in app.clipboard
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "RunDetailScreen", 10, "the detail")
        app.copy_to_clipboard("")
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard.startswith("tlbench train /data/oxford-pets ")


async def test_an_auto_run_shows_its_recipe_and_a_resumed_run_its_whole_history(tmp_path, monkeypatch):
    app, run, data = pets_app(tmp_path, monkeypatch)
    write_run_kinds(tmp_path / "runs", data)
    async with app.run_test(size=(120, 35)) as pilot:
        await open_runs(pilot)
        await pilot.press("down", "down", "down", "enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "RunDetailScreen", 10, "the detail")
        await pilot.pause()
        title = text_of(app, "#run-title")
        assert "1:35" in title and "2 sessions" in title and "ended 01-05 09:12" in title
        assert len(app.screen.query_one("#run-acc").history) == 3  # every epoch, both sessions
        report = str(app.screen.query_one("#run-report Static", Static).render())
        assert "auto chose: efficientnet_lite0, 224px, tta-flip, l2 0.001" in report
        assert "leaderboard (7 recipes)" in report and " 1. 0.8610 ±0.021" in report
        assert "2 more in leaderboard.json" in report
