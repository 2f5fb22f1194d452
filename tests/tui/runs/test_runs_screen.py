"""The Runs screen: open a run and use its model, truthful statuses that fit 80 columns, keys right after
escape, sort and filter, comparing marked runs, and the jobs it runs from the keyboard (resume, export,
predict, report) with the real engine."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers.data import make_dataset
from helpers.results import PETS, pets_dataset, write_pets_run
from helpers.tui import (
    make_app,
    run_with_timeout,
    text_of,
    wait_for,
    write_run,
)
from rich.console import Console
from textual.widgets import DataTable

from engine.core.events import EpochEnded, JobFinished
from engine.core.jobs import JobControl, run_job
from engine.train.config import TrainConfig
from engine.train.job import train
from tui.messages import JobEvent

DONE = "20260103-090000-oxford-pets-efficientnet_lite0-probe"
STOPPED = "20260102-090000-oxford-pets-efficientnet_lite0-full"
FAILED = "20260101-090000-oxford-pets-resnet50-probe"


def rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def three_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    data = pets_dataset(tmp_path / "pets")
    write_pets_run(root, data, DONE, created="2026-01-03T09:00:00+0000")
    write_pets_run(root, data, STOPPED, status="stopped", mode="full", created="2026-01-02T09:00:00+0000")
    write_pets_run(root, data, FAILED, status="failed", backbone="resnet50", created="2026-01-01T09:00:00+0000")
    return root


async def open_runs(pilot, count: int) -> DataTable:
    await pilot.press("7")
    await wait_for(pilot, lambda: pilot.app.screen.query_one("#runs", DataTable).row_count == count, 30, "the runs")
    await pilot.pause()
    return pilot.app.screen.query_one("#runs", DataTable)


async def test_runs_list_open_and_use_a_model(tmp_path):
    root = tmp_path / "runs"
    older = write_run(root, report=False)
    write_run(root, "20260102-090000-digits-resnet18-probe")
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("7")
        await wait_for(pilot, lambda: app.screen.query_one("#runs", DataTable).row_count == 2, 30, "the runs")
        table = app.screen.query_one("#runs", DataTable)
        first_row = [str(c) for c in table.get_row_at(0)]  # newest first
        assert first_row[1:7] == ["2026-01-01 12:00", "digits", "efficientnet_lite0", "probe", "0.9500", "0:42"]
        assert "resnet18" in str(table.coordinate_to_cell_key((0, 0)).row_key.value)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "RunDetailScreen"
        assert len(app.screen.query_one("#run-acc").history) == 5
        await pilot.press("escape", "down", "u")
        await pilot.pause()
        assert app.state.run_dir == older
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.view is not None, 30, "the results")
        assert app.screen.view.run_dir == older
        assert "no report.json yet" in text_of(app, "#results-empty")


async def test_statuses_are_truthful_and_whole_at_80x24(tmp_path):
    """D16, D7: a run that failed at start says "failed" (not "no epochs"), every column fits 80 columns."""
    root = three_runs(tmp_path)
    marked = write_pets_run(root, tmp_path / "pets", "20251231-090000-oxford-pets-vgg16-probe", status="failed",
                            backbone="vgg16", created="2025-12-31T09:00:00+0000")
    (marked / "status.json").write_text(json.dumps({"status": "failed", "error": "CUDA out of memory"}))
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_runs(pilot, 4)
        assert [r[-1] for r in rows(table)] == ["done", "stopped", "failed", "failed"]
        assert [r[1] for r in rows(table)] == ["01-03 09:00", "01-02 09:00", "01-01 09:00", "12-31 09:00"]
        assert table.virtual_size.width <= table.size.width  # nothing cut off at the right
        assert "no epoch finished and no checkpoint" in app.screen.views[2].status_detail
        await pilot.press("end")
        assert table.cursor_row == 3 and "CUDA out of memory" in text_of(app, "#runs-status")
        await pilot.press("home")
        assert table.cursor_row == 0


async def test_arrows_right_after_escape_move_the_cursor(tmp_path):
    """D8 (Runs): escape used to leave the list without focus, so the arrows typed next were dropped."""
    root = three_runs(tmp_path)
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_runs(pilot, 3)
        await pilot.press("escape", "down", "down")
        assert table.cursor_row == 2 and table.has_focus
        await pilot.press("enter")  # the detail screen, then escape and straight on
        await pilot.pause()
        await pilot.press("escape", "up")
        await pilot.pause()
        assert table.cursor_row == 1


async def test_sort_and_filter(tmp_path):
    root = three_runs(tmp_path)
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_runs(pilot, 3)
        screen = app.screen
        assert [v.name for v in screen.views] == [DONE, STOPPED, FAILED]  # by date, newest first
        await pilot.press("o")  # by best accuracy: the run without one last
        assert [v.name for v in screen.views] == [DONE, STOPPED, FAILED]
        assert screen.views[0].best_val_acc > screen.views[1].best_val_acc
        await pilot.press("o")  # by name: dataset, backbone, mode
        assert [v.config["backbone"] for v in screen.views] == ["efficientnet_lite0", "efficientnet_lite0", "resnet50"]
        assert "by name" in text_of(app, "#runs-header")
        await pilot.press("slash", *"fail")
        await pilot.pause()
        assert table.row_count == 1 and rows(table)[0][-1] == "failed"
        assert "1 of 3 runs" in text_of(app, "#runs-header")
        await pilot.press("enter", "down")  # back in the list
        assert table.has_focus
        await pilot.press("slash", "ctrl+u", *"lite0 full")
        await pilot.pause()
        assert [v.name for v in screen.views] == [STOPPED]
        await pilot.press("ctrl+u", "escape")
        await pilot.pause()
        assert table.row_count == 3 and screen.query_one("#runs-filter").has_class("hidden")


def mark_cells(table: DataTable) -> list[str]:
    return [str(table.get_row_at(i)[0]).strip() for i in range(table.row_count)]


async def test_mark_runs_and_compare_their_curves_and_config(tmp_path):
    """space marks (a number per marked row, the count in the header; space again unmarks), c compares: the
    curves of each run, the legend naming each, and only the config keys that differ; escape goes back."""
    root = three_runs(tmp_path)  # DONE and STOPPED differ in mode only; FAILED has no metrics at all
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_runs(pilot, 3)
        runs = app.screen
        await pilot.press("c")  # nothing marked: a hint, no comparison
        assert runs is app.screen
        await pilot.press("space")
        assert mark_cells(table) == ["1", "", ""] and "1 marked, c compares" in text_of(app, "#runs-header")
        await pilot.press("space")  # unmarks
        assert mark_cells(table) == ["", "", ""] and "marked" not in text_of(app, "#runs-header")
        await pilot.press("space", "down", "space")
        assert mark_cells(table) == ["1", "2", ""] and "2 marked" in text_of(app, "#runs-header")
        await pilot.press("c")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "CompareScreen", 10, "the comparison")
        await pilot.pause()
        compare = app.screen
        diff = compare.query_one("#compare-diff", DataTable)
        assert rows(diff) == [["mode", "probe", "full"]]  # lr, backbone, epochs … are equal: not shown
        legend = [compare.query_one(f"#compare-run-{i}") for i in range(2)]
        assert DONE in legend[0].plain and STOPPED in legend[1].plain  # shown shortened in the middle at 80x24
        shown = [str(line.render()) for line in legend]
        assert shown[0].endswith("-probe · done · best 0.8000 · 5 epoch(s)") and shown[0].startswith("━━ 1 2026")
        assert shown[1].endswith("-full · stopped · best 0.5900 · 2 epoch(s)")
        curves = compare.query_one("#compare-acc").series
        assert [[y for _x, y in points] for points, _colour in curves] == [
            pytest.approx([0.45 + 0.07 * e for e in range(1, 6)]), pytest.approx([0.52, 0.59])]
        assert curves[0][1] != curves[1][1]  # a colour each
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is runs and mark_cells(table) == ["1", "2", ""]

        await pilot.press("down", "space", "c")  # the failed run too: shown as such, the rest unchanged
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "CompareScreen", 10, "the comparison")
        await pilot.pause()
        assert "failed" in text_of(app, "#compare-run-2") and "no metrics" in text_of(app, "#compare-run-2")
        assert [r[0] for r in rows(app.screen.query_one("#compare-diff", DataTable))] == ["backbone", "mode"]
        assert app.screen.query_one("#compare-loss").series[2][0] == []


@pytest.fixture(scope="module")
def runs_of_colours(tmp_path_factory):
    """A finished probe and a fine-tuning run stopped after its first epoch (real engine, tiny data)."""
    base = tmp_path_factory.mktemp("runs-jobs")
    root = make_dataset(base / "colours", {"red": 8, "blue": 8, "green": 8})
    runs = base / "runs"
    probe = run_job("train", lambda ctx: train(TrainConfig(dataset=str(root), img_size=32, epochs=3,
                                                           runs_dir=str(runs)), ctx))
    control = JobControl()

    def sink(event):
        if isinstance(event, EpochEnded):
            control.stop()

    head = TrainConfig(dataset=str(root), mode="head", img_size=32, epochs=2, batch_size=8, workers=0,
                       runs_dir=str(runs))
    stopped = run_job("train", lambda ctx: train(head, ctx), sink, control)
    assert stopped.reason == "stopped"
    return root, runs, Path(probe.result["run_dir"]), Path(stopped.result["run_dir"])


async def test_resume_a_stopped_run_on_the_train_screen(tmp_path, runs_of_colours):
    """R on a stopped run: engine.train.job.resume runs as the training job, shown on Train; the run is
    then done."""
    root, runs, _probe, stopped = runs_of_colours
    app = make_app(root, runs_dir=str(runs))
    finals = []

    def hook(message):

        if isinstance(message, JobEvent) and message.job == "train" and isinstance(message.event, JobFinished):
            finals.append(message.event)

    async def scenario():
        async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
            table = await open_runs(pilot, 2)
            keys = [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(2)]
            table.move_cursor(row=keys.index(str(stopped)))
            assert rows(table)[keys.index(str(stopped))][-1] == "stopped"
            await pilot.press("R")
            await wait_for(pilot, lambda: app.current_mode == "train", 10, "the Train screen")
            train_screen = app.screen
            assert train_screen.job is not None  # space and s act on it there
            await wait_for(pilot, lambda: finals, 240, "the resumed run")
            assert finals[-1].reason == "completed" and finals[-1].result["run_dir"] == str(stopped)
            await wait_for(pilot, lambda: len(train_screen.query_one("#acc-plot").history) >= 1, 10, "the epoch")
            # the curves hold the run's whole history: the epochs before the stop, then the resumed ones
            epochs = [json.loads(line)["epoch"] for line in (stopped / "metrics.jsonl").read_text().splitlines()]
            assert [r["epoch"] for r in train_screen.query_one("#acc-plot").history] == epochs, epochs
            assert (stopped / "summary.json").exists()
            assert app.state.run_dir == stopped
            await pilot.press("7")
            await wait_for(pilot, lambda: any(v.name == stopped.name and v.status == "done"
                                              for v in app.screen.views), 30, "the run done")

    await run_with_timeout(scenario(), 400)


async def test_export_and_predict_from_the_runs_screen(tmp_path, runs_of_colours):
    root, runs, probe, _stopped = runs_of_colours
    app = make_app(root, runs_dir=str(runs))

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            table = await open_runs(pilot, 2)
            keys = [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(2)]
            table.move_cursor(row=keys.index(str(probe)))
            await pilot.press("x")
            await pilot.pause()
            assert app.screen.__class__.__name__ == "ExportDialog"
            await pilot.press("t")
            await wait_for(pilot, lambda: "exported" in text_of(app, "#runs-job"), 240, "the export")
            status = text_of(app, "#runs-job")
            assert "exported torchscript" in status and "checked: |Δp| ≤ " in status and status.endswith("model.pt")
            assert (probe / "export" / "model.pt").exists()

            await pilot.press("p")
            await pilot.pause()
            field = app.screen.query_one("#predict-path")
            field.value = str(root / "blue")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "PredictionsScreen", 240, "predictions")
            await pilot.pause()
            shown = rows(app.screen.query_one("#predictions", DataTable))
            assert len(shown) == 8 and shown[0][0] == "blue_0.png"
            assert shown[0][1].split()[0] in ("blue", "green", "red") and len(shown[0]) == 4  # image + top 3
            await pilot.press("escape")
            assert "predicted 8 image(s)" in text_of(app, "#runs-job")

    await run_with_timeout(scenario(), 500)


async def test_report_from_the_runs_screen_says_where_it_went_and_how_to_fetch_it(tmp_path, runs_of_colours):
    """H writes the run's HTML report on a worker thread; the notification names the file and gives the scp
    line; with runs marked, one file compares them."""
    import socket

    _root, runs, probe, stopped = runs_of_colours
    app = make_app(runs_dir=str(runs))

    def reports():
        return [n for n in app._notifications if n.title == "Report written"]

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            table = await open_runs(pilot, 2)
            keys = [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(2)]
            table.move_cursor(row=keys.index(str(probe)))
            await pilot.press("H")
            await wait_for(pilot, lambda: reports(), 240, "the report")
            path = (probe / "report.html").resolve()
            assert path.exists() and "Grad-CAM" in path.read_text()
            message = reports()[0].message
            assert str(path) in message and f"scp {socket.gethostname()}:{path} ." in message
            assert text_of(app, "#runs-job").startswith("report ")

            await pilot.press("home", "space", "down", "space", "H")  # both marked: their comparison
            await wait_for(pilot, lambda: len(reports()) == 2, 240, "the comparison")
            compared = Path(reports()[1].message.split("\n")[0])
            assert compared.parent == runs and compared.name.endswith("compare-2-runs.html")
            html = compared.read_text()
            assert 'data-section="compare"' in html and probe.name in html and stopped.name in html

    await run_with_timeout(scenario(), 500)


async def test_the_detail_never_folds_a_path_or_a_name_mid_word_at_80x24(tmp_path):
    """A value too long for its column goes under its name (the backbone whole); a path longer than the panel
    keeps both ends with "…" in the middle; the class list wraps between names."""
    root = tmp_path / "runs"
    run = write_pets_run(root, tmp_path / "pets", DONE)
    config = json.loads((run / "config.json").read_text())
    config["dataset"] = "/mnt/shared/datasets/oxford-iiit-pet-2026-rerelease/images-cleaned-by-audit"
    (run / "config.json").write_text(json.dumps(config))
    app = make_app(runs_dir=str(root))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(pilot, 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "RunDetailScreen", 10, "the detail")
        await pilot.pause()
        table = app.screen.query_one("#run-config ConfigTable")
        width = table.size.width
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(table.render())
        lines = [line.rstrip() for line in console.export_text().splitlines()]
        # too long for its column: on the line under its name, at the panel's width, both ends kept
        at = lines.index("dataset")
        dataset = lines[at + 1].strip()
        assert "…" in dataset and dataset.endswith("audit") and dataset.startswith("/mnt/sh"), dataset
        assert any(line.split()[-1] == "efficientnet_lite0" for line in lines if line.strip()), lines  # never cut
        assert all(len(line) <= width for line in lines), (width, lines)
        words = " ".join(lines[lines.index(next(x for x in lines if x.startswith("classes"))):]).split()
        names = {name.strip(",") for name in words}
        for name in PETS[:12]:  # every class shown is whole, on one line
            assert name in names, (name, lines)


def test_the_dataset_column_keeps_the_start_of_a_name_at_80_columns(tmp_path):
    """Oxford-IIIT Pets unpacks to oxford-iiit-pet/images: at 80 columns its cell was "oxfor…ages"; the
    generic folder goes first, then the end ("oxford-ii…"); a name that fits stays whole."""
    from tui.run_view import RunView

    def view(dataset: str) -> RunView:
        return RunView(tmp_path, {"dataset": dataset}, [], None, None)

    assert view("/data/oxford-iiit-pet/images").dataset == "oxford-iiit-pet-images"
    assert view("/data/oxford-iiit-pet/images").dataset_in(24) == "oxford-iiit-pet-images"
    assert view("/data/oxford-iiit-pet/images").dataset_in(15) == "oxford-iiit-pet"
    assert view("/data/oxford-iiit-pet/images").dataset_in(10) == "oxford-ii…"
    assert view("/data/cats-dogs-dev").dataset_in(10) == "cats-dogs…"
    assert view("/data/digits").dataset_in(10) == "digits"
