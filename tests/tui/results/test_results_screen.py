"""The Results screen: a run's report read and re-evaluated (e); at 80x24 with 37 Oxford-length classes, the
accuracy in view, the mistakes (and only mistakes) with readable captions, per-class
precision/recall/F1/support, a confusion matrix that scrolls under fixed headers, toggles to row percentages
and shows its cursor, and cells that choose their images or say why there are none."""

from __future__ import annotations

import json

from helpers.results import PETS, PETS_RUN, pets_dataset, pets_report, write_pets_run
from helpers.tui import (
    make_app,
    run_with_timeout,
    sample_report,
    text_of,
    wait_for,
    write_run,
)
from textual.widgets import DataTable

from tui.results.confusion import ConfusionGrid
from tui.results.losses import LossGrid
from tui.widgets.grid import ThumbnailGrid


async def open_results(pilot) -> None:
    await pilot.press("4")
    await wait_for(pilot, lambda: pilot.app.screen.view is not None and pilot.app.screen.view.report is not None,
                   30, "the report")
    await pilot.pause()


def grid_lines(widget) -> list[str]:
    return [widget.render_line(y).text for y in range(widget.size.height)]


async def test_results_after_a_run_with_a_report(tmp_path, tiny_dataset):
    """A real probe run; its report.json (as evaluation writes it) feeds the Results screen."""

    app = make_app(tiny_dataset, runs_dir=str(tmp_path / "runs"), config={"epochs": 2})

    async def scenario():
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await pilot.press("3", "t")
            await wait_for(pilot, lambda: app.state.run_dir is not None and not app.jobs.running(), 120, "training")
            run_dir = app.state.run_dir
            await pilot.press("4")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is not None, 30,
                           "the run's own report")
            classes = json.loads((run_dir / "config.json").read_text())["classes"]
            real = json.loads((run_dir / "report.json").read_text())  # every run ends with its evaluation
            assert app.screen.query_one("#per-class", DataTable).row_count == len(classes)
            assert app.screen.query_one("#matrix", ConfusionGrid).matrix == real["confusion"]

            (run_dir / "report.json").unlink()  # a run without a report says so, and e writes it again
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is None, 30,
                           "the empty state")
            assert "no report.json yet" in text_of(app, "#results-empty")
            await pilot.press("e")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is not None, 120,
                           "the evaluation")
            again = json.loads((run_dir / "report.json").read_text())
            assert again["confusion"] == real["confusion"] and app.job_status == ""

            report = sample_report([str(i) for i in range(10)])
            report["classes"] = classes
            n = len(classes)
            report["confusion"] = [[5 if i == j else (2 if (i, j) == (0, 1) else 0) for j in range(n)]
                                   for i in range(n)]
            report["per_class"] = report["per_class"][:n]
            loss_path = str(next((tiny_dataset / classes[0]).glob("*.png")))
            report["top_losses"] = [{"path": loss_path, "true": classes[0], "predicted": classes[1],
                                     "prob_true": 0.1, "prob_predicted": 0.8, "loss": 2.3}]
            report["most_confused"] = [{"true": classes[0], "predicted": classes[1], "count": 2}]
            (run_dir / "report.json").write_text(json.dumps(report))
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.view is not None and app.screen.view.report is not None, 30,
                           "the report")
            screen = app.screen
            grid = screen.query_one("#matrix", ConfusionGrid)
            assert grid.matrix[0][1] == 2
            assert screen.query_one("#per-class", DataTable).row_count == n
            assert screen.query_one("#confused", DataTable).row_count == 1
            # choose the confusion cell (true 0 -> predicted 1): its images show
            grid.focus()
            await pilot.pause()
            await pilot.press("right", "enter")
            await pilot.pause()
            images = screen.query_one("#loss-images", ThumbnailGrid)
            assert [t.path for t in images.items] == [loss_path]
            assert f"true {classes[0]} → predicted {classes[1]}" in text_of(app, "#images-title")
            # a: the highlighted image becomes the Attack screen's source
            await pilot.press("a")
            await wait_for(pilot, lambda: app.current_mode == "attack", 10, "the attack screen")
            await pilot.pause()
            assert app.screen.query_one("#attack-source").value == loss_path

    await run_with_timeout(scenario(), 300)


async def test_results_show_a_written_report_and_cells_choose_images(tmp_path):
    run = write_run(tmp_path / "runs")
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.view is not None, 30, "the report")
        header = text_of(app, "#results-header")
        assert "accuracy 0.980" in header and "top-5 0.997" in header
        grid = app.screen.query_one("#matrix", ConfusionGrid)
        images = app.screen.query_one("#loss-images", ThumbnailGrid)
        assert len(images.items) == 7  # the top losses first
        grid.focus()
        await pilot.pause()
        await pilot.press(*["down"] * 3, *["right"] * 8)  # true 3, predicted 8
        assert "true 3 → predicted 8: 4" in text_of(app, "#matrix-status")
        await pilot.press("enter")
        await pilot.pause()
        assert len(images.items) == 4 and all(t.label == "3" for t in images.items)
        confused = app.screen.query_one("#confused", DataTable)
        confused.focus()
        await pilot.pause()
        await pilot.press("down", "enter")  # 9 -> 4
        await pilot.pause()
        assert grid.cursor == (4, 9) and len(images.items) == 2


async def test_a_cell_shows_every_mistake_the_report_lists(tmp_path):
    """A cell's images come from the report's full list of wrong predictions, not just the top 16 losses."""
    run = write_run(tmp_path / "runs")
    report = json.loads((run / "report.json").read_text())
    report["mistakes"] = report["top_losses"]
    report["top_losses"] = report["top_losses"][:1]
    (run / "report.json").write_text(json.dumps(report))
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.view is not None, 30, "the report")
        images = app.screen.query_one("#loss-images", ThumbnailGrid)
        assert len(images.items) == 1  # l's view: the top losses
        app.screen.query_one("#matrix", ConfusionGrid).select(3, 8)
        app.screen.cell_images(3, 8)
        await pilot.pause()
        assert len(images.items) == 4 and "true 3 → predicted 8: 4 image(s), highest loss first" in text_of(
            app, "#images-title")


async def test_header_leads_with_the_accuracy_at_80x24(tmp_path):
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data)
    report = json.loads((run / "report.json").read_text())
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        header = text_of(app, "#results-header")
        assert f"accuracy {report['accuracy']:.3f}" in header and f"top-5 {report['top5']:.3f}" in header
        assert len(header) <= 78 and "…" in header  # the run's name gave way, from its middle
        assert header.endswith("probe") and PETS_RUN not in header


async def test_top_losses_list_only_mistakes_with_both_classes_and_the_probability(tmp_path):
    """D3: the captions name the true and the predicted class (shortened from the middle) and the
    probability, on two lines; the detail line names the highlighted mistake in full."""
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        grid = app.screen.query_one("#loss-images", LossGrid)
        assert grid.rows and all(r["true"] != r["predicted"] for r in grid.rows)
        assert "most confident mistakes" in text_of(app, "#images-title")
        first = grid.rows[0]
        lines = grid_lines(grid)
        caption, second = lines[grid.cell_h][: grid.cell_w], lines[grid.cell_h + 1][: grid.cell_w]
        true, predicted = first["true"], first["predicted"]
        assert caption.startswith("▶") and (true in caption or "…" in caption)
        assert caption[1:3] == true[:2] and caption.rstrip()[-2:] == true[-2:]  # both ends of the name
        assert second.lstrip().startswith("→") and second.rstrip().endswith(f"{100 * first['prob_predicted']:.0f}%")
        assert second.lstrip()[1:3] == predicted[:2]
        detail = text_of(app, "#loss-detail")
        assert f"{100 * first['prob_predicted']:.0f}%" in detail and "→" in detail
        # the caption the preview shows is whole
        assert grid.items[0].caption.startswith(f"true {true} → predicted {predicted} ")


async def test_no_mistakes_says_so_and_an_older_report_never_lists_right_answers(tmp_path):
    """D3: a model without mistakes has no "most confident mistakes", even in a report from before the fix
    whose top losses were its least sure right answers."""
    data = pets_dataset(tmp_path / "pets")
    report = pets_report(data, mistakes=False)
    right = [{"path": str(data / c / f"{c}_1.jpg"), "true": c, "predicted": c, "prob_true": 0.6,
              "prob_predicted": 0.6, "loss": 0.5} for c in PETS[:16]]
    report["top_losses"] = right  # what reports written before the fix held
    del report["mistakes"], report["least_confident"]  # neither was written then
    run = write_pets_run(tmp_path / "runs", data, report=report)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        grid = app.screen.query_one("#loss-images", LossGrid)
        assert grid.items == []
        assert "no mistakes" in text_of(app, "#images-title")
        assert "no mistakes: all 148 images were classified correctly" in "".join(grid_lines(grid))


async def test_per_class_table_shows_precision_recall_f1_and_support(tmp_path):
    """D17: no one-vs-rest "acc" (98.6% for a class with 50% recall); long names shortened from the middle."""
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data)
    report = json.loads((run / "report.json").read_text())
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        table = app.screen.query_one("#per-class", DataTable)
        assert [str(c.label) for c in table.ordered_columns] == ["class", "prec", "recall", "F1", "n"]
        k = PETS.index("american_pit_bull_terrier")
        row = [str(c) for c in table.get_row_at(k)]
        expected = report["per_class"][k]
        assert row[0] == "americ…errier"  # 13 characters: both ends of the name
        assert row[1:] == [f"{expected['precision']:.2f}", f"{expected['recall']:.2f}", f"{expected['f1']:.2f}",
                           str(expected["support"])]
        assert expected["recall"] <= 0.75 and expected["accuracy"] > 0.97  # the old column: high for every class
        # every column is in view at 80 columns, next to the matrix
        assert table.region.right <= 80 and table.virtual_size.width <= table.size.width


async def test_an_older_report_without_f1_is_read(tmp_path):
    data = pets_dataset(tmp_path / "pets")
    report = pets_report(data)
    for row in report["per_class"]:
        del row["f1"]
    run = write_pets_run(tmp_path / "runs", data, report=report)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await open_results(pilot)
        row = app.screen.view.report["per_class"][PETS.index("american_pit_bull_terrier")]
        assert abs(row["f1"] - 2 * row["precision"] * row["recall"] / (row["precision"] + row["recall"])) < 1e-9


async def test_the_matrix_scrolls_under_fixed_headers_and_shows_row_percentages(tmp_path):
    """D7: 37 classes at 80x24: the column numbers and row labels stay in view while the cells scroll; the
    cursor's row label and column number light up; n shows each row in percent; no scrollbars."""
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot)
        grid = app.screen.query_one("#matrix", ConfusionGrid)
        assert grid.has_focus and grid.n == 37
        assert grid.visible_columns < 37 and grid.visible_rows < 37
        await pilot.press("end", "pagedown", "pagedown", "pagedown", "pagedown", "pagedown")
        assert grid.cursor == (36, 36)
        lines = grid_lines(grid)
        header, last = lines[0], lines[grid.visible_rows]
        assert header.startswith("true\\pred") and header.rstrip().endswith("36")
        assert last.startswith("36 yorks…rier")
        assert grid.left > 0 and grid.top > 0 and header.split()[1] == str(grid.left)  # scrolled under the labels
        # the cursor's row label and column number are styled apart from the others (a crosshair)
        label_style = list(grid.render_line(grid.visible_rows))[0].style
        other_style = list(grid.render_line(1))[0].style
        assert label_style != other_style
        status = text_of(app, "#matrix-status")
        assert "true yorkshire_terrier → predicted yorkshire_terrier: 2" in status
        # counts, then row percentages (each row of 4 images: 2 right = 50)
        assert lines[grid.visible_rows].rstrip().endswith("2")
        await pilot.press("n")
        assert grid.normalised and grid_lines(grid)[grid.visible_rows].rstrip().endswith("50")
        assert grid_lines(grid)[0].startswith("true\\pred %")
        await pilot.press("n")
        assert not grid.normalised
        assert grid.styles.scrollbar_size_vertical == 0 or not grid.show_vertical_scrollbar


async def test_an_empty_cell_says_why_and_only_an_older_report_blames_its_age(tmp_path):
    """D13: a fresh report lists every mistake, so an empty off-diagonal cell has none; only a report without
    the `mistakes` list may call itself older."""
    data = pets_dataset(tmp_path / "pets")
    run = write_pets_run(tmp_path / "runs", data)
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await open_results(pilot)
        screen = app.screen
        grid = screen.query_one("#loss-images", LossGrid)
        screen.cell_images(0, 2)  # Abyssinian read as Birman: never
        await pilot.pause()
        text = "".join(grid_lines(grid))
        assert "no images: no Abyssinian was predicted as Birman" in text
        assert "older report" not in text
        yorkie, scottie = PETS.index("yorkshire_terrier"), PETS.index("scottish_terrier")
        screen.cell_images(yorkie, scottie)
        await pilot.pause()
        assert len(grid.items) == 2 and "2 image(s), highest loss first" in text_of(app, "#images-title")

    report = json.loads((run / "report.json").read_text())
    del report["mistakes"]
    report["top_losses"] = report["top_losses"][:1]
    (run / "report.json").write_text(json.dumps(report))
    app = make_app(runs_dir=str(tmp_path / "runs"))
    app.state.run_dir = run
    async with app.run_test(size=(120, 35)) as pilot:
        await open_results(pilot)
        screen = app.screen
        screen.cell_images(yorkie, scottie)
        await pilot.pause()
        text = "".join(grid_lines(screen.query_one("#loss-images", LossGrid)))
        assert "none of these are listed in this older report" in text
