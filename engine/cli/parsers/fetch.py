"""The flags of `tlbench fetch` (engine.cli.commands.fetch runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag
from engine.fetch.catalog import DATASETS


def register(sub) -> None:
    names = ", ".join(DATASETS)
    p = sub.add_parser(
        "fetch", help=f"download a dataset ({names}) from its official source",
        description="Download a dataset from its official source, verify its checksum, extract it safely, and "
                    "print the command that opens it. Without DATASET: list the datasets. Re-running on a "
                    "complete dataset does nothing; an interrupted download resumes.",
    )
    p.add_argument("dataset", nargs="?", help=f"one of: {names}")
    p.add_argument("--dest", metavar="DIR", help="where datasets go (default: $TLBENCH_DATA, else "
                   "~/.cache/tlbench/data); archives are kept in DIR/downloads while fetching")
    p.add_argument("--keep-archives", action="store_true",
                   help="keep the downloaded archives in DIR/downloads after extracting")
    add_json_flag(p)
