"""The flags of `tlbench eval` (engine.cli.commands.eval runs it)."""

from __future__ import annotations

import argparse

from engine.cli.common import add_json_flag, non_negative_int, positive_int
from engine.core.choices import DEVICES, RUN_PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluation report of a run: confusion matrix, per-class metrics, top losses")
    p.add_argument("run_dir", help="a run directory (runs/<…>)")
    p.add_argument("--data", default=None,
                   help="evaluate on this dataset (same class names) instead of the run's validation split")
    p.add_argument("--checkpoint", choices=["best.pt", "last.pt"], default="best.pt")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--workers", type=non_negative_int, default=None)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: average each image's logits with its mirror image's "
                   "(default: as the run recorded)")
    p.add_argument("--replan", action="store_true",
                   help="plan the validation split again from the dataset as it is now (default: the run's "
                   "recorded plan, for the files still there)")
    p.add_argument("--precision", choices=RUN_PRECISIONS, default="recorded",
                   help="compute in the run's recorded precision (default, its numbers on any machine) or this one")
    add_json_flag(p)
