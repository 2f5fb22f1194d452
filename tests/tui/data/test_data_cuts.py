"""The thumbnail status line at 80x24 with Oxford-length names (issue 24 item 7): it showed "1/10 ·" and nothing
else; now the position, the file name (shortened from its middle, its end kept) and the split side fit."""

from __future__ import annotations

from helpers.tui import make_app, text_of, wait_for, wait_thumbnails
from textual.widgets import DataTable

from tui.widgets.grid import ThumbnailGrid


async def test_the_thumbnail_status_keeps_the_file_name_at_80x24(pets):
    app = make_app(pets)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.info is not None, what="the scan")
        table = app.screen.query_one("#classes", DataTable)
        classes = app.state.info.classes
        longest = max(range(len(classes)), key=lambda i: len(classes[i]))
        table.move_cursor(row=longest)
        grid = app.screen.query_one("#thumbs", ThumbnailGrid)
        await wait_thumbnails(pilot, grid)
        grid.focus()
        await pilot.press("right")
        await pilot.pause()
        await pilot.pause()
        status = text_of(app, "#thumb-status")
        width = app.screen.query_one("#thumb-status").content_region.width
        assert len(status) <= width, status
        name = grid.items[grid.cursor].caption
        assert status.startswith(f"{grid.cursor + 1}/{len(grid.items)} · "), status
        assert status.split(" · ")[1][-6:] == name[-6:]  # the end of the file name (its number, .png) is there
