"""The Runs screen's list: sorting, filtering, what the listing job returns, the table, and the command line
that runs a listed folder's job again (`y`)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.widgets import DataTable

from engine.cli.reproduce import job_command
from tui.run_view import RunView

SORTS = ("date", "accuracy", "name")


def sort_views(views: list[RunView], key: str) -> list[RunView]:
    """date: newest first; accuracy: best first (runs without one last); name: dataset, backbone, mode."""
    if key == "accuracy":
        return sorted(views, key=lambda v: (v.best_val_acc is None, -(v.best_val_acc or 0.0), v.name))
    if key == "name":
        return sorted(views, key=lambda v: (v.dataset.lower(), str(v.config.get("backbone", "")).lower(),
                                            str(v.config.get("mode", "")), v.name))
    return sorted(views, key=lambda v: (v.created, v.name), reverse=True)


def matches(view: RunView, query: str) -> bool:
    """Every word of the query appears in the run's name, dataset, backbone, mode (or kind) or status (any case)."""
    haystack = " ".join([view.name, view.dataset, str(view.config.get("backbone", "")),
                         view.what, view.status]).lower()
    return all(word in haystack for word in query.lower().split())


@dataclass(frozen=True)
class Listed:
    """What the listing job read: every run in the folder, newest first."""

    views: list[RunView]


class RunsTable(DataTable):
    """The runs list: home and end go to the first and the last run (a row table has no columns to jump)."""

    BINDINGS = [
        Binding("home", "scroll_top", "First", show=False, id="runs.first"),
        Binding("end", "scroll_bottom", "Last", show=False, id="runs.last"),
    ]


def run_command(view: RunView) -> str:
    """The `tlbench …` line that runs the listed folder's job again (engine.cli.reproduce, which the HTML report's
    "reproduce" line uses too)."""
    return job_command(view.kind, view.config, view.result)
