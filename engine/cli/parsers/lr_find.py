"""The flags of `tlbench lr-find` (engine.cli.commands.lr_find runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag, positive_float, positive_int
from engine.cli.fields import add_dataclass_flags
from engine.cli.parsers.train import DATASET_HELP
from engine.train.config import TrainConfig

# The range test runs a fixed number of steps at a swept learning rate: no epochs, no lr, no early stopping.
NOT_FLAGS = {"dataset", "epochs", "lr", "freeze_epochs", "grad_clip", "patience", "tensorboard"}


def register(sub) -> None:
    p = sub.add_parser("lr-find", help="learning-rate range test: suggests --lr, saves the curve")
    p.add_argument("dataset", help=DATASET_HELP)
    add_dataclass_flags(p, TrainConfig, skip=NOT_FLAGS, flags={"mode": {
        "choices": ["head", "partial", "full"], "default": "full",
        "help": "the parameters the test trains: as the mode's first phase (default full: the head)"}})
    p.add_argument("--start-lr", type=positive_float, default=1e-7)
    p.add_argument("--end-lr", type=positive_float, default=10.0)
    p.add_argument("--steps", type=positive_int, default=100, help="steps of the test (50-200)")
    add_json_flag(p)
