"""Headless subcommands: `tlbench scan|backbones|doctor|fetch|train|eval|lr-find|export|predict|attack|robustness|dream|compare|explain|audit|report …`.

Progress goes to stderr; with --json exactly one JSON object goes to stdout (an error too). Exit codes: 0 done,
2 bad input (with a message naming the value), 1 a job that failed, 128+N stopped by signal N (see
engine.core.errors). Rich is imported lazily, so importing the engine stays UI-free.

A subcommand has two halves. engine/cli/parsers/<name>.py declares its flags (register(subparsers)) from the
spec layer alone, so `tlbench --help` and `tlbench train --help` answer without torch (an import-linter
contract in pyproject.toml says so). engine/cli/commands/<name>.py runs it (run(args)) and imports the engine
at its top. `command_module` below is the one place the command line reaches the engine: it imports the command's
module after the arguments are parsed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from engine import __version__

# One parser module and one command module per subcommand, named like it ("lr-find": lr_find).
COMMANDS = ["scan", "backbones", "doctor", "fetch", "train", "lr-find", "eval", "export", "predict", "attack",
            "robustness", "dream", "compare", "explain", "audit", "report"]


_argv: list[str] = []  # the arguments main() is parsing (not sys.argv: main can be called with its own)


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags; we add the --json error object so scripts always get one."""

    def error(self, message: str):  # noqa: D401
        # engine.cli.common (~30 ms) is imported once a command runs or fails: `tlbench` opening the workbench
        # imports this module only to ask subcommands()
        from engine.cli.common import print_error_json
        from engine.core.errors import EXIT_BAD_INPUT

        if "--json" in _argv:
            print_error_json("Invalid arguments", f"{self.prog}: {message}", "ArgumentError", EXIT_BAD_INPUT)
        super().error(message)  # exits with EXIT_BAD_INPUT (argparse's 2)


def _module_name(command: str) -> str:
    return command.replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tlbench", description="Transfer learning on images, in the terminal. "
                    "`tlbench [DATASET]` opens the workbench; the subcommands run headless.")
    parser.add_argument("--version", action="version", version=f"tlbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    # imported by name: `tlbench` opening the workbench imports this module only to ask subcommands(), and
    # needs none of the sixteen parsers
    for name in COMMANDS:
        importlib.import_module(f"engine.cli.parsers.{_module_name(name)}").register(sub)
    return parser


def subcommands() -> list[str]:
    return list(COMMANDS)


def command_module(command: str) -> ModuleType:
    """The module that runs `command` (engine.cli.commands.<name>, which imports torch and the engine): the
    one place the command line reaches the engine, called once the arguments are parsed."""
    return importlib.import_module(f"engine.cli.commands.{_module_name(command)}")


def main(argv: list[str] | None = None) -> int:
    from engine.cli.common import handle_errors  # as in Parser.error

    global _argv
    _argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    # the command's module is imported inside handle_errors: a broken install (torch missing) is reported the
    # way every other error is
    return handle_errors(args, lambda: command_module(args.command).run(args))


if __name__ == "__main__":
    sys.exit(main())
