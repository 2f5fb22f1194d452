"""The flags of `tlbench scan` (engine.cli.commands.scan runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag


def register(sub) -> None:
    p = sub.add_parser("scan", help="check a dataset: layout, classes, unusable files (reads only)")
    p.add_argument("dataset", help="dataset folder")
    add_json_flag(p)
