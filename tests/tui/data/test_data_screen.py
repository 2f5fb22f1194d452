"""The Data screen: classes and thumbnails (only the visible ones rendered, off the UI thread), a failed open
that keeps the dataset, long class names that give way to the counts at 80x24, type-to-jump, sorting,
thumbnail views (split, mistakes), unusable files, Esc, the preview's ends, the split's leakage, opening
another folder."""

from __future__ import annotations

import json
import os

from helpers.data import make_dataset, make_pets_like
from helpers.tui import (
    burst,
    make_app,
    scan_finished,
    text_of,
    wait_for,
    wait_thumbnails,
    write_run,
)
from textual.widgets import DataTable, Static

from tui.data.open_dataset import AskScreen
from tui.errors import ErrorModal
from tui.widgets.grid import ThumbnailGrid
from tui.widgets.inputs import TextField


def row_names(table: DataTable) -> list[str]:
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_thumbnails_render_off_the_ui_thread_and_only_what_is_visible(tmp_path):
    """A class of 400 images: only the visible thumbnails are requested; moving down keeps the cache bounded."""
    from helpers.data import make_dataset

    root = make_dataset(tmp_path / "big", {"red": 400, "blue": 3}, size=16)
    app = make_app(root)
    app.thumbnails.max_items = 40
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        table = app.screen.query_one("#classes", DataTable)
        table.move_cursor(row=1)  # "red" (classes are sorted: blue, red)
        grid = app.screen.query_one("#thumbs", ThumbnailGrid)
        await wait_thumbnails(pilot, grid)
        visible = len(grid.visible_indices())
        assert len(grid.items) == 400 and 0 < visible < 40
        # blue's 3 and red's visible ones (a first page may render twice while the layout settles), not 400
        assert app.thumbnails.rendered <= 2 * (3 + visible)
        grid.focus()
        await pilot.pause()
        for _ in range(12):
            await pilot.press("pagedown")
        await wait_thumbnails(pilot, grid)
        assert grid.cursor > 60
        assert len(app.thumbnails) <= 40  # bounded LRU: memory stays flat
        assert app.thumbnails.rendered < 200  # rows scrolled past were skipped, not rendered
        # enter opens the large preview with file name, size and label
        await pilot.press("enter")
        await pilot.pause()
        details = str(app.screen.query_one("#preview-details", Static).render())
        assert "label red" in details and "16x16 px" in details
        assert app.screen.query_one("#preview-title", Static).render()
        await pilot.press("escape")


async def test_broken_dataset_opens_an_error_modal_and_the_app_keeps_running(tmp_path):
    app = make_app(tmp_path / "no-such-folder")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error modal")
        modal = app.screen
        assert modal.error_title == "Dataset problem"
        assert "does not exist" in modal.cause
        assert modal.fix  # what to do
        await pilot.press("escape")
        await pilot.pause()
        assert app.current_mode == "data" and not isinstance(app.screen, ErrorModal)
        assert "Could not open" in text_of(app, "#data-empty")
        await pilot.press("2")
        await pilot.pause()
        assert app.current_mode == "model"  # still running


async def test_a_mistyped_folder_keeps_the_open_dataset_and_says_why(tmp_path, tiny_dataset):
    """D1: o with a path that does not exist: the error is shown, the dataset that was open stays open."""
    app = make_app(tiny_dataset)
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_finished(pilot)
        info = app.state.info
        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("#ask-input").value = str(tmp_path / "no-such-folder")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), 30, "the error modal")
        assert "does not exist" in app.screen.cause
        await pilot.press("escape")
        await pilot.pause()
        assert app.state.info is info and app.state.dataset == tiny_dataset
        assert app.screen.query_one("#classes", DataTable).row_count == 3
        summary = text_of(app, "#data-summary")
        assert "Still showing colours" in summary and "no-such-folder does not exist" in summary
        assert app.screen.query_one("#data-empty").has_class("hidden")
        # a folder that does open replaces it
        await pilot.press("o")
        await pilot.pause()
        other = make_dataset(tmp_path / "other", {"red": 3, "green": 3, "blue": 3, "yellow": 3})
        app.screen.query_one("#ask-input").value = str(other)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.info is not None and app.state.info.name == "other", 30, "other")
        assert app.state.dataset == other and "Still showing" not in text_of(app, "#data-summary")


async def test_long_class_names_give_way_to_the_counts_at_80x24(tmp_path):
    """D7: Oxford's 37 names: middle-truncated with …; the counts, train and val columns stay on screen."""
    root = make_pets_like(tmp_path / "pets", per_class=2, size=16)
    app = make_app(root)
    for size in ((80, 24), (120, 35)):
        async with app.run_test(size=size) as pilot:
            await scan_finished(pilot)
            table = app.screen.query_one("#classes", DataTable)
            names = row_names(table)
            assert len(names) == 37
            # nothing is scrolled off to the right: every column fits the list's width
            assert table.virtual_size.width <= table.scrollable_content_region.width, size
            assert [str(c.label) for c in table.ordered_columns][-2:] == ["train", "val"]
            box = app.screen.query_one("#class-box")
            assert box.region.right <= size[0] // 2 + 8
            longest = "american_pit_bull_terrier"
            if size == (80, 24):
                shown = [n for n in names if n.startswith("american_") and "…" in n]
                assert shown and shown[0].endswith("_terrier") and len(shown[0]) >= 16
            else:
                assert longest in names  # room enough: whole names
        app = make_app(root)


async def test_type_to_jump_and_sort_by_count(tmp_path):
    root = make_dataset(tmp_path / "colours", {"red": 2, "green": 5, "blue": 3, "yellow": 4})
    app = make_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_finished(pilot)
        table = app.screen.query_one("#classes", DataTable)
        assert row_names(table) == ["blue", "green", "red", "yellow"]
        await pilot.press("slash", "y", "e")
        await pilot.pause()
        assert row_names(table)[table.cursor_row] == "yellow"
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is table and app.screen.query_one("#class-jump").has_class("hidden")
        grid = app.screen.query_one("#thumbs", ThumbnailGrid)
        assert {t.label for t in grid.items} == {"yellow"}
        await pilot.press("s")  # by image count, most first; the cursor stays on its class
        await pilot.pause()
        assert row_names(table) == ["green", "yellow", "blue", "red"]
        assert row_names(table)[table.cursor_row] == "yellow"
        assert "images ↓" in str(table.ordered_columns[1].label)
        await pilot.press("s")
        await pilot.pause()
        assert row_names(table) == ["blue", "green", "red", "yellow"]
        # Esc in the jump field goes back to the list too
        await pilot.press("slash", "g", "escape")
        await pilot.pause()
        assert row_names(table)[table.cursor_row] == "green" and app.focused is table


async def test_thumbnails_filter_by_split_and_by_the_runs_mistakes(tmp_path):
    root = make_dataset(tmp_path / "colours", {"red": 10, "blue": 10})
    runs = tmp_path / "runs"
    app = make_app(root, runs_dir=str(runs))
    async with app.run_test(size=(120, 35)) as pilot:
        await scan_finished(pilot)
        screen = app.screen
        grid = screen.query_one("#thumbs", ThumbnailGrid)
        assert len(grid.items) == 10  # blue, all of it
        sides = screen.split["sides"]
        await pilot.press("v")
        await pilot.pause()
        assert grid.items and all(sides[t.path] == "train" for t in grid.items)
        await pilot.press("v")
        await pilot.pause()
        assert grid.items and all(sides[t.path] == "val" for t in grid.items)
        assert len(grid.items) == sum(1 for p, s in sides.items() if s == "val" and "/blue/" in p)
        await pilot.press("v")  # no run chosen: no "misclassified" view, back to all
        await pilot.pause()
        assert len(grid.items) == 10 and screen.class_images.view == "all"

        run = write_run(runs)
        wrong = sorted(str(p) for p in (root / "blue").glob("*.png"))[:3]
        report = json.loads((run / "report.json").read_text())
        report["mistakes"] = [{"path": p, "true": "blue", "predicted": "red", "prob_true": 0.2,
                               "prob_predicted": 0.8, "loss": 1.6} for p in wrong]
        (run / "report.json").write_text(json.dumps(report))
        app.state.run_dir = run
        app.state.changed()
        await pilot.press("v", "v", "v")
        await pilot.pause()
        assert screen.class_images.view == "misclassified"
        assert sorted(t.path for t in grid.items) == wrong
        screen.query_one("#classes", DataTable).move_cursor(row=1)  # red: none of its images are listed
        await pilot.pause()
        assert grid.items == [] and "0 of 10 shown (misclassified)" in text_of(app, "#thumb-status")


async def test_unusable_files_are_listed_with_their_reasons(tmp_path):
    from badfiles import write_text_as_jpg, write_zero_byte
    from helpers.data import make_dataset

    root = make_dataset(tmp_path / "mixed", {"red": 4, "blue": 4})
    write_zero_byte(root / "red" / "empty.png")
    write_text_as_jpg(root / "blue" / "note.jpg")
    before = sorted(p.name for p in root.rglob("*"))
    app = make_app(root)
    async with app.run_test(size=(120, 35)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        assert "2 unusable (u)" in text_of(app, "#data-summary")
        await pilot.press("u")
        await pilot.pause()
        table = app.screen.query_one("#unusable", DataTable)
        rows = {str(table.get_row_at(i)[0]).rsplit("/", 1)[-1]: str(table.get_row_at(i)[1])
                for i in range(table.row_count)}
        assert "empty file" in rows["empty.png"] and "not an image" in rows["note.jpg"]
        assert "nothing on disk was changed" in text_of(app, "#unusable-title")
        await pilot.press("u")
        await pilot.pause()
        assert app.screen.query_one("#data-unusable").has_class("hidden")
    assert sorted(p.name for p in root.rglob("*")) == before  # read only


async def test_escape_closes_the_unusable_files_view(tmp_path):
    from badfiles import write_zero_byte

    root = make_dataset(tmp_path / "mixed", {"red": 3, "blue": 3})
    write_zero_byte(root / "red" / "empty.png")
    app = make_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_finished(pilot)
        await pilot.press("u")
        await pilot.pause()
        assert not app.screen.query_one("#data-unusable").has_class("hidden")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one("#data-unusable").has_class("hidden")
        assert app.focused is app.screen.query_one("#classes")


async def test_preview_stops_at_the_ends_and_home_end_jump(tmp_path):
    root = make_dataset(tmp_path / "colours", {"red": 5})
    app = make_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_finished(pilot)
        await pilot.press("g", "enter")
        await pilot.pause()
        preview = app.screen
        assert preview.index == 0
        await pilot.press("left")  # the first image: ← does not wrap to the last
        await pilot.pause()
        assert preview.index == 0
        await pilot.press("end")
        await pilot.pause()
        assert preview.index == 4 and "5/5" in text_of(app, "#preview-title")
        await pilot.press("right")
        await pilot.pause()
        assert preview.index == 4
        await pilot.press("home")
        await pilot.pause()
        assert preview.index == 0 and "1/5" in text_of(app, "#preview-title")


async def test_the_split_shows_the_audits_leakage_and_k_keeps_duplicates_on_one_side(tmp_path):
    """Issue 14: the split on screen is the one a run trains on: the exclude list left out, a duplicate group
    the last audit found across the split kept on one side; k turns that off (the Model form follows) and the
    summary then warns of the leak."""
    from engine.data.exclude import save_audit, write_exclude
    from engine.data.scan import scan_dataset, split_dataset

    root = make_dataset(tmp_path / "colours", {"red": 10, "blue": 10})
    train, val = split_dataset(scan_dataset(root), 0.2, 0)
    group = [train[0].path, val[0].path, train[1].path]
    save_audit(root, {"duplicates": [{"paths": group, "across_split": True}]})
    write_exclude(root, [train[2].path])
    app = make_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_finished(pilot)
        await wait_for(pilot, lambda: "excluded" in text_of(app, "#data-summary"), 30, "the split")
        summary = text_of(app, "#data-summary")
        assert "split 16 train / 3 val" in summary and "1 excluded" in summary, summary
        assert "1 duplicate group kept on one side (k: off)" in summary, summary
        assert app.screen.query_one("#data-summary").region.height == 3  # 80 columns: the line wraps, not cut
        assert app.screen.split["sides"][val[0].path] == "train" and train[2].path not in app.screen.split["sides"]
        await pilot.press("2")  # the Model form exists before Data changes a setting under it
        await wait_for(pilot, lambda: bool(app.screen.query("#field-group_duplicates")), 60, "the Model form")
        assert app.screen.query_one("#field-group_duplicates").value == "auto"
        await pilot.press("1")
        await pilot.pause()
        await pilot.press("k")
        await wait_for(pilot, lambda: "LEAK" in text_of(app, "#data-summary"), 30, "the leak warning")
        summary = text_of(app, "#data-summary")
        assert "split 15 train / 4 val" in summary and "k keeps each on one side" in summary, summary
        assert app.state.config["group_duplicates"] == "off"
        await pilot.press("2")  # the Model form shows the setting changed on Data
        await pilot.pause()
        assert app.screen.query_one("#field-group_duplicates").value == "off"
        await pilot.press("1")
        await pilot.pause()
        await pilot.press("k")
        await wait_for(pilot, lambda: "kept on one side" in text_of(app, "#data-summary"), 30, "grouped again")
        assert "group_duplicates" not in app.state.config


async def test_open_another_dataset_with_o(tmp_path, tiny_dataset):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the demo")
        await pilot.press("o")
        await pilot.pause()
        field = app.screen.query_one("#ask-input")
        field.value = str(tiny_dataset)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.info is not None and app.state.info.name == "colours",
                       what="the new dataset")
        assert app.screen.query_one("#classes", DataTable).row_count == 3


async def test_tab_completes_folders_in_the_open_dialog_and_enter_opens(tmp_path):
    """D6: the dialog says "tab complete": Tab completes the folder name (and steps inside), Enter opens."""
    from helpers.data import make_dataset

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


async def test_a_dataset_that_failed_to_open_again_is_closed_on_every_screen(tmp_path):
    """The folder open now is gone when it is scanned again: the Data screen closes it and says so, and the
    Model screen, shown next, no longer names it (the change goes through the one helper for shared state)."""
    import shutil

    root = make_dataset(tmp_path / "colours", {"red": 3, "blue": 3})
    app = make_app(root)
    async with app.run_test(size=(120, 35)) as pilot:
        await scan_finished(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: "for colours" in text_of(app, "#model-header"), 120, "the Model screen")
        await pilot.press("1")
        shutil.rmtree(root)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), 30, "the error")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.state.info is None, 10, "the dataset closed")
        assert "Could not open" in text_of(app, "#data-summary")
        await pilot.press("2")
        await wait_for(pilot, lambda: "no dataset" in text_of(app, "#model-header"), 30, "the Model screen")
