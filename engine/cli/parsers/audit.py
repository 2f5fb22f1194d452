"""The flags of `tlbench audit` (engine.cli.commands.audit runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag, argument_type
from engine.core.checks import fraction, non_negative_int, positive_int
from engine.core.choices import DEVICES
from engine.models.spec import DEFAULT_BACKBONE


def register(sub) -> None:
    p = sub.add_parser("audit", help="find likely label errors, duplicates (and split leakage), outliers",
                       description="Audit a dataset from its cached backbone features (extracted if missing): "
                       "cleanlab's label issues on out-of-fold probe probabilities, exact and near duplicates "
                       "(flagged when they straddle the train/validation split or carry different labels), "
                       "outliers and class imbalance. Nothing in the dataset is moved or changed; audit.json "
                       "goes to a new run directory.")
    p.add_argument("dataset", help="dataset folder (see `tlbench scan`)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"feature backbone (default {DEFAULT_BACKBONE})")
    p.add_argument("--folds", type=argument_type(positive_int), default=5, help="cross-validation folds (default 5)")
    p.add_argument("--similarity", type=argument_type(fraction), default=None,
                   help="cosine similarity of (centred) features from which two images are near duplicates "
                   "(default 0.90)")
    p.add_argument("--seed", type=argument_type(non_negative_int), default=0,
                   help="the folds' and the train/validation split's seed (train's default: 0)")
    p.add_argument("--val-fraction", type=argument_type(fraction), default=0.2,
                   help="the split whose leakage is checked (train's default: 0.2)")
    p.add_argument("--img-size", type=argument_type(positive_int), default=None)
    p.add_argument("--weights", default=None, help="backbone weights: a state-dict file or 'random'")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--workers", type=argument_type(non_negative_int), default=None)
    p.add_argument("--runs-dir", default=None, help="where the audit's run directory goes")
    add_json_flag(p)
