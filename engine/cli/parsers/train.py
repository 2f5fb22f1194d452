"""The flags of `tlbench train` (engine.cli.commands.train runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag
from engine.cli.fields import add_dataclass_flags, values_from_args
from engine.train.config import TrainConfig

DATASET_HELP = "dataset folder (see `tlbench scan`)"


def register(sub) -> None:
    p = sub.add_parser("train", help="train a classifier on a frozen or fine-tuned pretrained backbone")
    p.add_argument("dataset", nargs="?", help=DATASET_HELP)  # optional: --resume needs none
    add_dataclass_flags(p, TrainConfig, skip={"dataset"})
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue a stopped run from its last.pt, with the settings it recorded")
    p.add_argument("--replan", action="store_true",
                   help="with --resume: plan the split again from the dataset as it is now (default: the run's "
                   "recorded plan, for the files still there)")
    add_json_flag(p)


def config_from_args(args) -> TrainConfig:
    """The config the flags describe; settings a command has no flag for (lr-find: --epochs) keep defaults."""
    return TrainConfig(**values_from_args(args, TrainConfig))
