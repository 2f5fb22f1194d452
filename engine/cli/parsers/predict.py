"""The flags of `tlbench predict` (engine.cli.commands.predict runs it)."""

from __future__ import annotations

import argparse

from engine.cli.common import add_json_flag, positive_int
from engine.core.choices import DEVICES, RUN_PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("predict", help="classify images with a trained run")
    p.add_argument("run_dir", help="a run directory (runs/<…>)")
    p.add_argument("images", nargs="+", help="image files, or folders (every image inside them, sorted)")
    p.add_argument("--top-k", type=positive_int, default=5)
    p.add_argument("--checkpoint", choices=["best.pt", "last.pt"], default="best.pt")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: average each image's logits with its mirror image's "
                   "(default: as the run recorded)")
    p.add_argument("--precision", choices=RUN_PRECISIONS, default="recorded",
                   help="compute in the run's recorded precision (default, its numbers on any machine) or this one")
    add_json_flag(p)
