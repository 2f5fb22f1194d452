"""The workbench opens on the bundled demo dataset and shows its classes."""

from conftest import DEMO
from textual.widgets import DataTable

from tui.app import TlbenchApp


async def test_app_opens_on_the_demo_and_lists_classes():
    app = TlbenchApp(DEMO)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#classes", DataTable)
        assert table.row_count == 10
        assert app.info is not None and len(app.info.samples) == 1797
