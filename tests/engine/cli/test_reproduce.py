"""The `tlbench train …` command a report shows is the run's settings: parsed back by `tlbench train`'s own
parser it gives the very TrainConfig the run recorded."""

from __future__ import annotations

import shlex

import pytest

from engine.cli import build_parser
from engine.cli.parsers.train import config_from_args
from engine.cli.reproduce import job_command, train_command
from engine.train.config import DEFAULT_EPOCHS, TrainConfig

RECORDED_TOO = {"kind": "train", "classes": ["a", "b"], "versions": {"torch": "2"}, "train_images": 8}


def parsed(command: str) -> TrainConfig:
    words = shlex.split(command)
    assert words[:2] == ["tlbench", "train"]
    return config_from_args(build_parser().parse_args(words[1:])).validate()  # as `tlbench train` does


@pytest.mark.parametrize("settings", [
    {"mode": "probe", "epochs": 30, "lr": 0.01, "img_size": 32, "precision": "fp32", "workers": 0},
    {"mode": "full", "epochs": 6, "freeze_epochs": 2, "tta": True, "mix": "cutmix", "ema": True,
     "label_smoothing": 0.1, "grad_clip": 1.0, "channels_last": "off", "amp": False, "decoded_cache": False,
     "exclude": "/data/my list.txt", "group_duplicates": "off", "optimizer": "sgd", "seed": 7},
    {"mode": "head", "epochs": 9, "channels_last": "on", "weights": "random", "dropout": 0.2, "patience": 3},
])
def test_the_command_parses_back_into_the_recorded_settings(settings):
    recorded = TrainConfig(dataset="/data/my pets", **settings).validate()  # as a run records it
    command = train_command({**recorded.to_dict(), **RECORDED_TOO})
    assert command.startswith("tlbench train '/data/my pets' ")
    again = parsed(command)
    for field in ("dataset", *settings):
        assert getattr(again, field) == getattr(recorded, field), (field, command)
    assert again.to_dict() == {**recorded.to_dict(), "runs_dir": None}
    assert ("--epochs" in command) == (settings["epochs"] != DEFAULT_EPOCHS[settings["mode"]])  # the mode's default


def test_an_auto_run_reproduces_its_search_not_its_winner():
    """--mode auto writes the winner (backbone, size, TTA, views, L2, smoothing) over the settings it searched:
    the command runs the search again instead of pinning them."""
    recorded = TrainConfig(dataset="/d", mode="auto", budget=3.0, folds=4, backbone="efficientnet_lite2",
                           img_size=288, tta=True, aug_views=4, head_l2=0.01, label_smoothing=0.1)
    command = train_command({**recorded.to_dict(), "auto": {"winner": "x"}})
    assert command == "tlbench train /d --mode auto --budget 3.0 --folds 4"
    again = parsed(command)
    assert (again.mode, again.budget, again.folds) == ("auto", 3.0, 4)


def test_settings_of_other_modes_are_left_out():
    """--budget is recorded by every run (a dataclass field) but does nothing outside auto."""
    command = train_command({**TrainConfig(dataset="/d", budget=5.0, ema=True).to_dict()})
    assert command == "tlbench train /d"


@pytest.mark.parametrize("kind, config, result, want", [
    ("lr-find", {"kind": "lr-find", "dataset": "/data/my pets", "mode": "head", "backbone": "resnet18",
                 "img_size": 64, "batch_size": 16, "seed": 3}, None,
     {"dataset": "/data/my pets", "mode": "head", "backbone": "resnet18", "img_size": 64, "seed": 3}),
    ("compare", {"kind": "compare", "dataset": "/d"}, {"dataset": "/d", "folds": 3,
                                                      "results": [{"backbone": "resnet18"}, {"backbone": "a/b"}]},
     {"dataset": "/d", "backbones": "resnet18,a/b", "folds": 3}),
    ("audit", {"kind": "audit", "dataset": "/d"}, {"dataset": "/d", "backbone": "resnet18", "folds": 5},
     {"dataset": "/d", "backbone": "resnet18", "folds": 5}),
])
def test_every_kind_of_run_has_the_command_that_runs_it_again(kind, config, result, want):
    """Issue 24 item 6: `y` on the Runs screen copies the line that reproduces the highlighted folder, whatever
    job wrote it; each line is parsed back by that command's own parser into the recorded values."""
    words = shlex.split(job_command(kind, config, result))
    assert words[:2] == ["tlbench", kind]
    args = build_parser().parse_args(words[1:])
    for key, value in want.items():
        assert getattr(args, key) == value, (key, words)
