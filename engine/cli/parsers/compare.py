"""The flags of `tlbench compare` (engine.cli.commands.compare runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag, non_negative_int, positive_int
from engine.cli.parsers.train import DATASET_HELP
from engine.core.choices import DEVICES


def register(sub) -> None:
    p = sub.add_parser("compare", help="rank backbones on a dataset: cross-validated accuracy and speed")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--backbones", required=True, metavar="A,B,C",
                   help="comma-separated backbones; a+b concatenates their features "
                        "(e.g. efficientnet_lite0,efficientnet_lite1,efficientnet_lite0+efficientnet_lite1)")
    p.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--img-size", type=positive_int, default=None,
                   help="input size in px (default: each backbone's, less for small images, as the probe)")
    p.add_argument("--weights", default=None,
                   help="'random' for untrained backbones (a test of the pipeline, not of the backbones)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the folds (default 0)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per extraction batch")
    p.add_argument("--workers", type=non_negative_int, default=None, help="DataLoader workers")
    p.add_argument("--runs-dir", default=None, help="where the run directory goes (default $TLBENCH_RUNS or ./runs)")
    p.add_argument("--exclude", default="auto", metavar="auto|none|FILE",
                   help="images left out of the comparison: auto (the dataset's exclude list, if marked), none, "
                   "or a file with one path per line, as `train --exclude` takes it")
    p.add_argument("--remeasure", action="store_true",
                   help="time every backbone again (the cached speeds are replaced), e.g. after one was timed "
                        "on a busy machine")
    add_json_flag(p)
