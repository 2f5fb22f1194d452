"""Issue 24 item 2 (and 3) on the Results screen with 37 Oxford breeds: the per-class table sorted by F1,
recall, precision or images (s, worst first, the header says which), the worst classes (w), the whole matrix
on one screen (o) whose cells open their images, the least sure right answers when there are no mistakes, and a
header that says which checkpoint and when the numbers are from."""

from __future__ import annotations

import json

from helpers.results import PETS, pets_app, pets_dataset, pets_report, write_pets_run
from helpers.tui import burst, make_app, text_of, wait_for

from tui.results.confusion import ConfusionGrid
from tui.results.losses import LossGrid
from tui.results.overview import MatrixMap
from tui.results.per_class import PerClassTable


async def open_results(pilot) -> None:
    await pilot.press("4")
    await wait_for(pilot, lambda: pilot.app.screen.view is not None and pilot.app.screen.view.report is not None,
                   30, "the report")
    await pilot.pause()


def column(table: PerClassTable, k: int) -> list[str]:
    return [str(table.get_row_at(i)[k]) for i in range(table.row_count)]


async def test_s_sorts_the_classes_worst_first_and_says_by_what(tmp_path, monkeypatch):
    app, run, _ = pets_app(tmp_path, monkeypatch)
    per_class = json.loads((run / "report.json").read_text())["per_class"]
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        table = app.screen.query_one("#per-class", PerClassTable)
        assert column(table, 0)[0] == "Abyssinian"  # the report's order
        await pilot.press("s")  # F1, worst first
        await pilot.pause()
        assert [str(c.label) for c in table.ordered_columns] == ["class", "prec", "recall", "F1▲", "n"]
        f1 = [float(x) for x in column(table, 3)]
        assert f1 == sorted(f1) and f1[0] < f1[-1]
        worst = min(range(len(PETS)), key=lambda k: (per_class[k]["f1"], k))
        assert table.class_at(0) == worst
        await pilot.press("enter")  # the class's row: the matrix goes to its diagonal
        await pilot.pause()
        assert app.screen.query_one("#matrix", ConfusionGrid).cursor == (worst, worst)
        await pilot.press("s")
        await pilot.pause()
        assert str(table.ordered_columns[2].label) == "recall▲"
        recall = [float(x) for x in column(table, 2)]
        assert recall == sorted(recall)
        await pilot.press("s", "s", "s")  # precision, images, and back to the report's order
        await pilot.pause()
        assert [str(c.label) for c in table.ordered_columns] == ["class", "prec", "recall", "F1", "n"]
        assert table.order == list(range(len(PETS)))


async def test_w_shows_the_worst_classes(tmp_path, monkeypatch):
    app, run, _ = pets_app(tmp_path, monkeypatch)
    per_class = json.loads((run / "report.json").read_text())["per_class"]
    worst3 = [per_class[k]["class"] for k in sorted(range(len(PETS)), key=lambda k: (per_class[k]["f1"], k))[:3]]
    async with app.run_test(size=(120, 35)) as pilot:
        await open_results(pilot)
        await pilot.press("w")
        await pilot.pause()
        table = app.screen.query_one("#per-class", PerClassTable)
        assert table.has_focus and str(table.ordered_columns[3].label) == "F1▲"
        assert [per_class[table.class_at(i)]["class"] for i in range(3)] == worst3
        assert text_of(app, "#matrix-status").startswith("worst F1: " + ", ".join(worst3))


async def test_the_whole_matrix_fits_one_screen_and_its_cells_open_their_images(tmp_path, monkeypatch):
    app, run, _ = pets_app(tmp_path, monkeypatch)
    report = json.loads((run / "report.json").read_text())
    t, p = PETS.index("yorkshire_terrier"), PETS.index("scottish_terrier")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "MatrixOverview", 10, "the overview")
        await pilot.pause()
        heat = app.screen.query_one(MatrixMap)
        # every row and column on screen: 37 rows in 19 lines of half blocks, the column numbers above
        assert heat.size.height >= 1 + (len(PETS) + 1) // 2 and heat.size.width >= heat.gutter + len(PETS)
        assert heat.region.bottom <= 24
        last = heat.render_line((len(PETS) + 1) // 2).text
        assert last.startswith("36 ") and last.count("▀") == len(PETS) * heat.cell_w
        await burst(pilot, *["down"] * t, *["right"] * p)
        await pilot.pause()
        assert heat.cursor == (t, p)
        assert "yorkshire_terrier → scottish_terrier: 2" in text_of(app, "#overview-cell")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ResultsScreen", 10, "Results")
        await pilot.pause()
        assert app.screen.query_one("#matrix", ConfusionGrid).cursor == (p, t)
        grid = app.screen.query_one("#loss-images", LossGrid)
        assert len(grid.rows) == report["confusion"][t][p] == 2
        assert all(r["true"] == "yorkshire_terrier" and r["predicted"] == "scottish_terrier" for r in grid.rows)
        await pilot.press("o", "escape")  # escape leaves it without choosing
        await pilot.pause()
        assert app.screen.__class__.__name__ == "ResultsScreen" and len(grid.rows) == 2


async def test_no_mistakes_shows_the_least_sure_right_answers(tmp_path):
    data = pets_dataset(tmp_path / "pets")
    report = pets_report(data, mistakes=False)
    run = write_pets_run(tmp_path / "runs", data, report=report)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        grid = app.screen.query_one("#loss-images", LossGrid)
        unsure = report["least_confident"]
        assert unsure and [r["path"] for r in grid.rows] == [r["path"] for r in unsure]
        assert all(r["true"] == r["predicted"] for r in grid.rows)
        assert "no mistakes: the 148 right answers it was least sure of" in text_of(app, "#images-title")
        k = PETS.index("pug")
        app.screen.query_one("#matrix", ConfusionGrid).select(k, k)
        await pilot.press("enter")  # a diagonal cell: that class's least sure right answers
        await pilot.pause()
        assert [r["path"] for r in grid.rows] == [r["path"] for r in unsure if r["true"] == "pug"]
        probs = [r["prob_true"] for r in grid.rows]
        assert probs == sorted(probs) and len(probs) == 4


async def test_the_header_says_which_checkpoint_and_when(tmp_path, monkeypatch):
    """Issue 24 item 3: the accuracy is best.pt's (its epoch said: Train's last line is the last epoch's), and
    the header says when the report was computed."""
    data = pets_dataset(tmp_path / "pets")
    report = {**pets_report(data), "written": "2026-01-01T12:05:00+0000"}
    monkeypatch.chdir(tmp_path)
    run = write_pets_run(tmp_path / "runs", data, report=report)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "best_epoch": 4, "epochs": 5}))
    app = make_app(runs_dir="runs")
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        header = text_of(app, "#results-header")
        assert f"accuracy {report['accuracy']:.3f}" in header
        assert "best.pt (epoch 4 of 5)" in header and header.rstrip().endswith("01-01 12:05")


async def test_an_auto_runs_results_say_its_recipe_and_b_lists_the_leaderboard(tmp_path, monkeypatch):
    """Issue 24 item 5: what auto chose is on Results (not only in leaderboard.json); b lists every recipe."""
    from helpers.results import AUTO_RUN, write_run_kinds

    app, _, data = pets_app(tmp_path, monkeypatch)
    write_run_kinds(tmp_path / "runs", data)
    app.state.run_dir = tmp_path / "runs" / AUTO_RUN
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        status = text_of(app, "#matrix-status")
        assert status.startswith("auto chose efficientnet_lite0, 224px, tta-flip, l2 0.001 · CV 0.861")
        await pilot.press("b")
        await pilot.pause()
        note = next(n for n in app._notifications if n.title.startswith("auto's recipes"))
        lines = note.message.splitlines()
        assert lines[0] == "auto chose: efficientnet_lite0, 224px, tta-flip, l2 0.001"
        assert lines[3].startswith(" 1. 0.8610 ±0.021") and "skipped (budget)" in note.message
