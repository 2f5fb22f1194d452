"""The flags of `tlbench backbones` (engine.cli.commands.backbones runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag, argument_type, positive_int

DEFAULT_LIMIT = 25


def register(sub) -> None:
    p = sub.add_parser("backbones", help="list the pretrained backbones and their weights status")
    p.add_argument("--all", action="store_true", help="every torchvision classifier, not only the featured ones")
    p.add_argument("--search", metavar="TEXT",
                   help="the backbones whose name contains every word of TEXT, timm's pretrained models included "
                        "(e.g. 'dinov2', 'convnext in22k', 'clip')")
    p.add_argument("--limit", type=argument_type(positive_int), default=DEFAULT_LIMIT, metavar="N",
                   help=f"with --search: show the first N matches (default {DEFAULT_LIMIT})")
    add_json_flag(p)
