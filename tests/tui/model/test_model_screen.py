"""The Model screen: the registry loaded in the background before the first visit, weights status said
plainly, settings validated as typed and shown per mode with a scroll hint, the learning-rate range test from
a key (l, u), and the backbone search."""

from __future__ import annotations

import time

import pytest
from helpers.tui import make_app, run_with_timeout, text_of, wait_for
from textual.widgets import DataTable, Static

from engine.core.events import LogLine, StepEnded
from tui.errors import ErrorModal
from tui.model.lr_finder import LrFinder


async def model_screen(pilot):
    app = pilot.app
    await pilot.press("2")
    await wait_for(pilot, lambda: app.screen.registry is not None and bool(app.screen.query("#form")), 120,
                   "the registry")
    await pilot.pause()
    return app.screen


async def test_the_registry_is_ready_before_the_first_visit(tiny_dataset):
    """Loaded on a background thread at start-up: the first visit shows the table at once."""
    app = make_app(tiny_dataset, warm=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.registry_outcome is not None, 120, "the background registry")
        assert app.current_mode == "data"  # never visited
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#form")), 10, "the form")
        assert screen.registry is not None  # no second load: the rows were there
        assert screen.query_one("#backbones", DataTable).row_count >= 10


async def test_weights_status_is_said_plainly(tiny_dataset, monkeypatch):
    """A backbone whose weights must be downloaded is not offered as ready: 'needs download', the detail
    under the table, and a warning when it is chosen."""
    import engine.models.weights

    monkeypatch.setattr(engine.models.weights, "offline", lambda: False)  # a machine that could download
    monkeypatch.setattr(engine.models.weights, "network_problem", lambda url: None)  # ... and reaches the server
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        screen = await model_screen(pilot)
        table = screen.query_one("#backbones", DataTable)
        cells = {str(table.get_row_at(i)[1]): str(table.get_row_at(i)[6]) for i in range(table.row_count)}
        assert cells["efficientnet_lite0"] == "shipped" and cells["vgg16"] == "needs download"
        table.focus()
        row = list(cells).index("vgg16")
        table.move_cursor(row=row)
        await pilot.pause()
        detail = text_of(app, "#backbone-detail")
        assert detail.startswith("vgg16 · weights needs download") and "downloads on first use" in detail
        await pilot.press("enter")
        await pilot.pause()
        assert any(n.title == "Weights need a download" for n in app._notifications)


async def test_model_form_validates_inline_with_the_reason(tmp_path, tiny_dataset):
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.registry is not None, what="the registry")
        table = app.screen.query_one("#backbones", DataTable)
        assert table.row_count >= 10
        lr = app.screen.query_one("#field-lr")
        lr.value = "0"
        await pilot.pause()
        status = text_of(app, "#config-status")
        assert "--lr 0" in status and "out of range" in status
        assert app.screen.query_one("#row-lr").has_class("-invalid")
        assert app.state.config_error and "--lr" in app.state.config_error
        lr.value = "abc"
        await pilot.pause()
        assert "not a number" in text_of(app, "#config-status")
        lr.value = "0.01"
        await pilot.pause()
        assert app.state.config_error is None and app.state.config["lr"] == 0.01
        assert not app.screen.query_one("#row-lr").has_class("-invalid")
        # every TrainConfig field the workbench does not set itself is in the form
        import dataclasses

        from engine.train.config import TrainConfig
        from tui.model.settings import NOT_IN_FORM

        for f in dataclasses.fields(TrainConfig):
            if f.name not in NOT_IN_FORM:
                assert app.screen.query(f"#field-{f.name}"), f.name
        # m cycles the mode; the chosen mode's line is marked
        await pilot.press("escape", "m")
        await pilot.pause()
        assert app.state.config["mode"] == "head"
        assert "● head" in text_of(app, "#modes")


async def test_settings_follow_the_mode_and_say_what_is_below(tiny_dataset):
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        screen = await model_screen(pilot)

        def shown(name):
            return screen.query_one(f"#row-{name}").display

        assert not shown("unfreeze") and not shown("freeze_epochs") and not shown("augment")
        more = text_of(app, "#form-more")
        assert "more below" in more and "not used in probe mode" in more
        await pilot.press("m")  # head
        await pilot.pause()
        assert shown("augment") and not shown("unfreeze")
        await pilot.press("m")  # partial
        await pilot.pause()
        assert shown("unfreeze") and not shown("freeze_epochs")
        await pilot.press("m")  # full
        await pilot.pause()
        assert shown("freeze_epochs") and not shown("unfreeze")
        # the hint follows the scroll: at the bottom nothing is below any more
        form = screen.query_one("#form")
        form.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        await pilot.pause()
        assert "below" not in text_of(app, "#form-more") and "above" in text_of(app, "#form-more")


class ScriptedLrFind:
    """engine.train.lr_find.lr_find's events: a loss that falls, then rises, over 30 steps."""

    def __init__(self) -> None:
        self.slow = False

    def __call__(self, config, ctx):
        from engine.core.jobs import JobStopped

        try:
            return self.run(config, ctx)
        except JobStopped:
            time.sleep(1.5 if self.slow else 0)  # the engine finishing its step
            raise

    def run(self, config, ctx):
        ctx.log("lr range test: 30 steps from 1e-07 to 1e+01")
        lrs = [1e-7 * (1e8 ** (i / 29)) for i in range(30)]
        for i, lr in enumerate(lrs, 1):
            ctx.check()
            loss = 2.0 - 1.5 * min(i, 20) / 20 + (0.5 * (i - 20) if i > 20 else 0)
            ctx.progress(StepEnded("lr-find", i, 30, {"lr": lr, "loss": loss}), force=True)
            if self.slow:
                time.sleep(0.3)
        ctx.emit(LogLine("suggested --lr 3.2e-04"))
        return {"run_dir": "", "suggested_lr": 3.16e-4, "points": 30, "mode": config.mode}


async def test_lr_find_from_a_key_plots_the_curve_and_u_uses_it(tiny_dataset, monkeypatch):
    import engine.train.lr_find

    fake = ScriptedLrFind()
    monkeypatch.setattr(engine.train.lr_find, "lr_find", fake)
    app = make_app(tiny_dataset, config={"mode": "head"})

    async def scenario():
        async with app.run_test(size=(120, 35)) as pilot:
            screen = await model_screen(pilot)
            finder = screen.query_one(LrFinder)
            await pilot.press("l")
            await wait_for(pilot, lambda: finder.job is not None and finder.job.done.is_set(), 30, "lr-find")
            await pilot.pause()
            assert not screen.query_one("#lr-panel").has_class("hidden")
            assert len(screen.query_one("#lr-plot").points) == 30
            status = text_of(app, "#lr-status")
            assert "suggested lr 3.2e-04" in status and "u puts it in the form" in status
            await pilot.press("u")
            await pilot.pause()
            assert screen.query_one("#field-lr").value == "0.00032"
            assert app.state.config["lr"] == pytest.approx(3.2e-4)
            await pilot.press("escape")  # the panel closes once the job is over
            await pilot.pause()
            assert screen.query_one("#lr-panel").has_class("hidden")
            # l again while it runs: stopping… shows at once, in the panel and the tab bar
            fake.slow = True
            await pilot.press("l")
            await wait_for(pilot, lambda: len(finder.points) >= 3, 30, "steps")
            await pilot.press("l")
            assert "stopping…" in text_of(app, "#lr-status") and app.job_status.endswith("stopping…")
            await wait_for(pilot, lambda: finder.job is not None and finder.job.done.is_set(), 30, "the stop")
            await pilot.pause()
            assert "stopped" in text_of(app, "#lr-status") and app.job_status == ""

    await run_with_timeout(scenario(), 120)


async def test_lr_find_in_probe_mode_explains_why_not(tiny_dataset):
    """The engine's own rule (a probe has no lr range test) comes back as an error with its fix."""
    app = make_app(tiny_dataset)

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
            await model_screen(pilot)
            await pilot.press("l")
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), 120, "the error")
            assert "head, partial or full mode" in app.screen.cause + app.screen.fix

    await run_with_timeout(scenario(), 180)


async def test_search_lists_timms_models_capped_measures_them_and_picks_one(tiny_dataset, tmp_path, monkeypatch):
    """/ searches every backbone (timm's ~1,800 pretrained models too): a capped list, rows measured in the
    background, enter picks one; an empty box shows the registry again."""
    from timm_hub import hub_cache, put_in_hub_cache

    from engine.models.registry import search_backbones
    from tui.model.search import SEARCH_CAP, BackboneSearch

    put_in_hub_cache(hub_cache(tmp_path, monkeypatch), "resnet18.a1_in1k")
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        screen = await model_screen(pilot)
        table = screen.query_one("#backbones", DataTable)
        registry_rows = table.row_count
        await pilot.press("slash", *"vit")
        await wait_for(pilot, lambda: screen.search_rows is not None and screen.search_note.startswith(
            f"{len(search_backbones('vit'))} match"), 120, "the matches of 'vit'")
        assert len(search_backbones("vit")) > SEARCH_CAP == table.row_count  # hundreds match, 30 rows
        box = screen.query_one(BackboneSearch)
        box.value = ""
        await pilot.press(*"resnet18 a1")
        name = "timm/resnet18.a1_in1k"

        def measured():
            rows = screen.search_rows or []
            return [r["name"] for r in rows] == [name] and rows[0].get("weights") == "cached"
        await wait_for(pilot, measured, 120, "the resnet18.a1_in1k row, measured")
        assert [str(c) for c in table.get_row_at(0)[1:]] == [name, "11.7M", "224", "-", "512", "cached"]
        await pilot.press("enter", "enter")  # to the list, then choose the row
        await pilot.pause()
        assert screen.workbench.config["backbone"] == name
        assert name in text_of(app, "#model-header")
        box.value = ""
        await wait_for(pilot, lambda: screen.search_rows is None and table.row_count == registry_rows, 10,
                       "the registry again")


async def test_m_in_a_burst_changes_the_mode_each_time_and_auto_shows_its_budget_first(tiny_dataset):
    """Issue 24 items 5 and 7: `m m` after enter changed the mode once; in auto mode the budget was field 21,
    what auto chooses was still editable, and the summary named a backbone and epochs auto does not use."""
    from helpers.tui import burst

    app = make_app(tiny_dataset)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await model_screen(pilot)
        await burst(pilot, "m", "m")
        await pilot.pause()
        assert app.state.config.get("mode") == "partial"  # probe -> head -> partial: two changes
        await burst(pilot, "m", "m")
        await pilot.pause()
        await pilot.pause()
        assert app.state.config.get("mode") == "auto"
        visible = [row.id for row in screen.query(".form-row") if row.display]
        assert visible[:2] == ["row-mode", "row-budget"]  # the budget right under the mode
        for name in ("epochs", "lr", "optimizer", "tta", "label_smoothing"):
            assert f"row-{name}" not in visible, name
        more = text_of(app, "#form-more")
        assert "auto chooses label_smoothing, tta" in more
        status = text_of(app, "#config-status")
        assert "auto searches efficientnet_lite" in status and "-fold CV" in status and "within 15 min" in status
        assert "epochs" not in status and "efficientnet_lite0 ·" not in status
        assert "backbone chosen by the search" in text_of(app, "#model-header")
        await burst(pilot, "m")  # back to probe: the rows in their order again
        await pilot.pause()
        visible = [row.id for row in screen.query(".form-row") if row.display]
        assert visible[:2] == ["row-mode", "row-epochs"]


async def test_the_focused_settings_help_is_shown_whole_at_80x24(tiny_dataset):
    """Issue 24 item 7: at 80x24 each setting's help is one line cut with …; the focused one's is whole."""
    app = make_app(tiny_dataset)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await model_screen(pilot)
        help_of = screen.query_one("#row-epochs .form-help", Static)
        assert help_of.size.height == 1  # not focused: one line
        await pilot.press("s")  # the first field: mode
        await pilot.press("tab")  # epochs
        await pilot.pause()
        await pilot.pause()
        assert screen.focused is not None and screen.focused.id == "field-epochs"
        assert help_of.size.height >= 2
        text = "epochs (default: 30 for probe, 5-6 for the others)"
        assert help_of.content_region.width < len(text) <= help_of.content_region.width * help_of.size.height


async def test_y_copies_the_train_line_of_the_forms_settings(tiny_dataset):
    """Issue 24 item 6: "copy as command" on the form gives the `tlbench train …` line these settings run."""
    from helpers.tui import burst

    app = make_app(tiny_dataset)
    async with app.run_test(size=(80, 24)) as pilot:
        await model_screen(pilot)
        await burst(pilot, "m")  # probe -> head
        await pilot.pause()
        assert app.state.config.get("mode") == "head"
        await pilot.press("y")
        await pilot.pause()
        line = app.clipboard
        assert line.startswith(f"tlbench train {tiny_dataset}") or line.startswith("tlbench train '")
        assert "--mode head" in line
        app.state.config["epochs"] = 7
        await pilot.press("y")
        await pilot.pause()
        assert "--epochs 7" in app.clipboard and "--mode head" in app.clipboard


async def test_opening_the_form_validates_it_a_few_times_not_once_per_field(tiny_dataset, monkeypatch):
    """Mounting the form changes every field at once: the screen validates the newest values, not each field's
    in turn (25 validations before, each reading the dataset and the runs folder). Changes made together still
    all arrive: the last Changed carries every field."""
    from tui.model.screen import ModelScreen

    checks = []
    real = ModelScreen.check
    monkeypatch.setattr(ModelScreen, "check", lambda self, *a, **k: checks.append(1) or real(self, *a, **k))
    app = make_app(tiny_dataset)
    async with app.run_test(size=(120, 35)) as pilot:
        screen = await model_screen(pilot)
        fields = len(screen.query(".form-row"))
        assert fields > 20 and 0 < len(checks) <= 5, (len(checks), fields)
        screen.query_one("#field-lr").value = "0.02"
        screen.query_one("#field-epochs").value = "7"
        await pilot.pause()
        assert app.state.config["lr"] == 0.02 and app.state.config["epochs"] == 7
