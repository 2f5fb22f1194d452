"""Headless subcommands: `tlbench scan|backbones|doctor|fetch|train|eval|lr-find|export|predict|attack|robustness|dream|compare|explain|audit|report …`.

Progress goes to stderr; with --json exactly one JSON object goes to stdout (an error too). Exit codes: 0 done,
2 bad input (with a message naming the value), 1 a job that failed, 128+N stopped by signal N (see
engine.core.errors). Rich is imported lazily, so importing the engine stays UI-free.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine import __version__

# One module per subcommand (engine/cli/commands/), each with register(subparsers) setting `func`.
COMMANDS = ["scan", "backbones", "doctor", "fetch", "train", "lr-find", "eval", "export", "predict", "attack",
            "robustness", "dream", "compare", "explain", "audit", "report"]


_argv: list[str] = []  # the arguments main() is parsing (not sys.argv: main can be called with its own)


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags; we add the --json error object so scripts always get one."""

    def error(self, message: str):  # noqa: D401
        from engine.cli.common import print_error_json
        from engine.core.errors import EXIT_BAD_INPUT

        if "--json" in _argv:
            print_error_json("Invalid arguments", f"{self.prog}: {message}", "ArgumentError", EXIT_BAD_INPUT)
        super().error(message)  # exits with EXIT_BAD_INPUT (argparse's 2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tlbench", description="Transfer learning on images, in the terminal. "
                    "`tlbench [DATASET]` opens the workbench; the subcommands run headless.")
    parser.add_argument("--version", action="version", version=f"tlbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"engine.cli.commands.{name.replace('-', '_')}").register(sub)
    return parser


def subcommands() -> list[str]:
    return list(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    from engine.cli.common import handle_errors

    global _argv
    _argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return handle_errors(args, lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
