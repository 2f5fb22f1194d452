"""The `tlbench` console script: a subcommand runs headless (engine.cli); anything else opens the workbench."""

from __future__ import annotations

import sys

from engine.cli import main as cli_main
from engine.cli import subcommands

CLI_FLAGS = ("-h", "--help", "--version")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in subcommands() or argv[0] in CLI_FLAGS):
        return cli_main(argv)
    from tui.app import run_app  # textual: not for a headless subcommand

    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
