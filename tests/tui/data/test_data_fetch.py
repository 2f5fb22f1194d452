"""Fetching from the Data screen (f): the datasets listed with their titles; a fetch runs as a job and opens
the result."""

from __future__ import annotations

from helpers.data import make_dataset
from helpers.tui import (
    make_app,
    text_of,
    wait_for,
)

from tui.errors import ErrorModal


async def test_fetch_hook_downloads_and_opens_the_dataset(tmp_path, monkeypatch):
    """f asks for a name, fetches it as a job and opens the result."""
    import types

    import tui.data.fetch as fetch_module
    from engine.core.events import ProgressAdvanced

    fetched = tmp_path / "data" / "colours"

    def fetch_dataset(name, dest=None, *, ctx=None):  # engine.fetch.sources's signature
        assert name == "colours" and dest is not None
        ctx.progress(ProgressAdvanced("download", 1, 1, "bytes"), force=True)
        return {"path": str(make_dataset(fetched, {"red": 3, "green": 3})), "command": "tlbench …"}

    # the fetch panel's view of engine.fetch.sources (DatasetSource rows and the download), nothing downloaded
    monkeypatch.setattr(fetch_module, "DATASETS", {"colours": types.SimpleNamespace(title="a tiny test dataset")})
    monkeypatch.setattr(fetch_module, "fetch_dataset", fetch_dataset)
    app = make_app(tmp_path / "nothing-here")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error")
        await pilot.press("escape")
        await pilot.pause()
        assert "f fetch one (" in text_of(app, "#data-empty")
        await pilot.press("f")
        await pilot.pause()
        await pilot.press(*"colours", "enter")
        await wait_for(pilot, lambda: app.state.info is not None, what="the fetched dataset")
        assert app.state.dataset == fetched and app.state.info.classes == ["green", "red"]


async def test_f_lists_the_datasets_to_fetch(tmp_path):
    from tui.data.open_dataset import AskScreen

    app = make_app(tmp_path / "nothing-here")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error")
        await pilot.press("escape", "f")
        await pilot.pause()
        assert isinstance(app.screen, AskScreen) and "oxford-pets" in str(app.screen.hint)
        assert "Oxford-IIIT Pets" in str(app.screen.hint)  # each name with its title
