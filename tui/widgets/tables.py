"""Refilling a DataTable with columns sized from the cells themselves.

A DataTable measures its auto-width columns later, when it is idle; a table refilled with new columns while
its screen was hidden or being resized could keep the header widths ("11-3" for a date, "tuib-pe" for a
dataset). Widths computed here, from the text the cells hold, are right at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable


def cell_width(cell) -> int:
    return cell_len(cell.plain if isinstance(cell, Text) else str(cell))


def refill(table: DataTable, columns: Sequence[str], rows: Sequence[Sequence], keys: Sequence[str] | None = None) -> None:
    """Replace the table's columns and rows; each column as wide as its widest cell or header."""
    table.clear(columns=True)
    for k, label in enumerate(columns):
        width = max([cell_len(label)] + [cell_width(row[k]) for row in rows if k < len(row)])
        table.add_column(label, width=width)
    for i, row in enumerate(rows):
        table.add_row(*row, key=keys[i] if keys is not None else None)
