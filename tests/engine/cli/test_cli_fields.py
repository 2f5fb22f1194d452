"""Flags generated from the settings dataclasses (engine/cli/fields.py), and the one-helper-each checks they
share: range checks and "a/b" numbers (engine/core/checks.py), time-stamped outputs, top-k rows."""

import dataclasses
import json
import re
from dataclasses import dataclass, field

import pytest
import torch

from engine.adversarial.params import AttackParams, DreamParams, RobustnessParams
from engine.cli import build_parser, main
from engine.cli.fields import add_dataclass_flags, flag_names, values_from_args
from engine.cli.parsers.lr_find import NOT_FLAGS
from engine.cli.parsers.train import config_from_args
from engine.core.checks import check_number, check_whole, fraction, parse_number, positive_int
from engine.core.errors import ConfigError
from engine.core.outputs import timestamped
from engine.models.predictions import top_predictions, top_predictions_rows
from engine.train.config import TrainConfig


def options(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for action in sub.choices[command]._actions for s in action.option_strings}


def test_every_train_setting_has_its_flag_and_lr_find_all_but_its_own():
    train, lr_find = options("train"), options("lr-find")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "dataset":  # the positional
            continue
        assert set(flag_names(f)) <= train, f.name
        assert (f.name in NOT_FLAGS) != (set(flag_names(f)) <= lr_find), f.name
    assert {"--no-amp", "--channels-last", "--no-channels-last", "--train-bn", "--resume", "--json"} <= train
    assert "--no-train-bn" not in train and "--no-tensorboard" not in train  # off by default: --x turns it on


def argv_for(config: TrainConfig) -> list[str]:
    """The flags that ask for `config`, spelled from the fields (what a user would type)."""
    argv = [config.dataset]
    for f in dataclasses.fields(TrainConfig):
        value, flag = getattr(config, f.name), flag_names(f)[0]
        if f.name == "dataset" or value is None:
            continue
        if "switch" in f.metadata:
            on, off = f.metadata["switch"]
            argv += [] if value == f.default else [flag if value == on else "--no-" + flag[2:]]
        elif isinstance(value, bool):
            argv += [] if value == f.default else [flag if value else "--no-" + flag[2:]]
        else:
            argv += [flag, str(value)]
    return argv


def test_a_config_round_trips_through_its_flags():
    config = TrainConfig(dataset="data/x", backbone="resnet18", mode="full", epochs=7, batch_size=16, lr=0.02,
                         img_size=96, val_fraction=0.25, seed=3, workers=2, device="cpu", runs_dir="r",
                         weights="random", weight_decay=0.01, optimizer="sgd", label_smoothing=0.1,
                         augment="strong", unfreeze=3, freeze_epochs=2, train_bn=True, precision="fp32",
                         amp=False, channels_last="off", grad_clip=1.5, patience=4, tensorboard=True,
                         exclude="marked.txt", group_duplicates="off",
                         dropout=0.2, tta=True, mix="cutmix", ema=True, ema_decay=0.99, budget=5.0, folds=3,
                         head_l2=0.01, aug_views=2, holdout=0.2, decoded_cache=False, compile=True)
    assert all(getattr(config, f.name) != f.default for f in dataclasses.fields(TrainConfig))  # every one set
    args = build_parser().parse_args(["train", *argv_for(config)])
    assert config_from_args(args) == config
    on = build_parser().parse_args(["train", "d", "--channels-last"])
    assert config_from_args(on).channels_last == "on"


def test_no_flags_give_the_dataclass_defaults():
    parser = build_parser()
    assert config_from_args(parser.parse_args(["train", "d"])) == TrainConfig(dataset="d")
    lr = config_from_args(parser.parse_args(["lr-find", "d"]))
    assert lr == TrainConfig(dataset="d", mode="full")  # lr-find's own --mode default
    args = parser.parse_args(["robustness", "runs/x"])
    assert RobustnessParams(**values_from_args(args, RobustnessParams)) == RobustnessParams(run_dir="runs/x")
    args = parser.parse_args(["dream", "--class", "tabby"])
    assert DreamParams(**values_from_args(args, DreamParams)) == DreamParams(target="tabby")
    args = parser.parse_args(["attack", "--backbone", "b", "i.png", "--eps", "8/255", "--random-start"])
    values = values_from_args(args, AttackParams)
    assert values["eps"] == "8/255" and values["random_start"] is True  # the text; validate() reads it
    assert AttackParams(images=["i.png"], **values).validate().eps == pytest.approx(8 / 255)


@dataclass
class Toy:
    size: int = field(default=4, metadata={"help": "size in px", "parse": positive_int})
    share: float = field(default=0.5, metadata={"help": "a share", "parse": fraction, "flag": ("--share", "-s")})
    colour: str = field(default="red", metadata={"help": "red | blue", "choices": ("red", "blue")})
    fast: bool = field(default=True, metadata={"help": "go fast"})
    loud: bool = field(default=False, metadata={"help": "say more", "cli_help": "say more on stderr"})
    layout: str = field(default="auto", metadata={"help": "auto | on | off", "switch": ("on", "off")})
    eps: float = field(default=0.1, metadata={"help": "budget", "parse": str})
    count: int | None = field(default=None, metadata={"help": "how many"})


def toy_parser():
    import argparse

    parser = argparse.ArgumentParser(prog="toy", exit_on_error=False)
    add_dataclass_flags(parser, Toy)
    return parser


def test_a_new_field_is_a_flag_with_its_type_choices_and_help():
    parser = toy_parser()
    args = parser.parse_args(["--size", "8", "-s", "1/4", "--colour", "blue", "--no-fast", "--loud",
                              "--no-layout", "--eps", "4/255", "--count", "3"])
    assert Toy(**values_from_args(args, Toy)) == Toy(8, 0.25, "blue", False, True, "off", "4/255", 3)
    assert Toy(**values_from_args(parser.parse_args([]), Toy)) == Toy()
    text = parser.format_help()
    assert "size in px" in text and "say more on stderr" in text and "--fast, --no-fast" in text
    assert "--no-loud" not in text


@pytest.mark.parametrize("argv, needle", [
    (["--size", "0"], "argument --size: 0 must be 1 or more"),
    (["--size", "x"], "argument --size: 'x' is not a whole number"),
    (["--share", "2"], "2 must be between 0 and 1"),
    (["--colour", "green"], "invalid choice: 'green'"),
    (["--count", "many"], "invalid int value: 'many'"),  # no parser named: argparse's int
])
def test_bad_text_is_refused_by_argparse_naming_the_value(argv, needle):
    import argparse

    with pytest.raises(argparse.ArgumentError, match=needle):
        toy_parser().parse_args(argv)


def test_train_flags_keep_their_messages(capfd):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "d", "--workers", "-1", "--json"])
    assert exit_.value.code == 2
    out, err = capfd.readouterr()
    assert "--workers: -1 must be 0 or more" in err and json.loads(out)["error"]["exit_code"] == 2


# ------------------------------------------------------------------------------------ engine/core/checks.py


def test_parse_number_reads_fractions_and_refuses_the_rest():
    assert parse_number("4/255") == pytest.approx(4 / 255) and parse_number(" 0.5 ") == 0.5
    assert parse_number(2) == 2.0
    for bad in ("four", "1/0", "", True):
        with pytest.raises(ValueError, match="is not a number"):
            parse_number(bad)


def test_range_checks_name_the_flag_the_value_and_the_fix():
    assert check_whole("--steps", 5, 1, 10) == 5
    with pytest.raises(ConfigError, match=r"^--steps 0 is out of range: use a whole number from 1 to 10\.$"):
        check_whole("--steps", 0, 1, 10)
    for bad in (True, 2.0, "3"):
        with pytest.raises(ConfigError, match="out of range"):
            check_whole("--steps", bad, 1, 10)
    with pytest.raises(ConfigError, match=r"--freeze-epochs -1 is out of range: use a whole number, 0 or more\."):
        check_whole("--freeze-epochs", -1, 0)
    assert check_number("--lr", 10, 0, 10, above=True) == 10.0
    cases = [({"lo": 0, "above": True}, 0, "use a positive number"),
             ({"lo": 0}, -0.5, "use 0 or more"),
             ({"lo": 0, "hi": 1, "above": True, "below": True}, 1, "use a number above 0 and below 1"),
             ({"lo": 0, "hi": 1}, float("nan"), "use a number from 0 to 1"),
             ({"lo": 0, "hi": 1, "fix": "use 4/255"}, 2, "use 4/255")]
    for kw, value, fix in cases:
        with pytest.raises(ConfigError) as err:
            check_number("--x", value, **kw)
        assert str(err.value) == f"--x {value} is out of range: {fix}."


def test_every_validate_uses_the_same_wording():
    with pytest.raises(ConfigError, match=r"--img-size 16 is out of range: use 32 to 1024 pixels \(e.g. 224\)"):
        TrainConfig(dataset="d", img_size=16).validate()
    with pytest.raises(ConfigError, match=r"--grad-clip 0 is out of range: use a positive number\."):
        TrainConfig(dataset="d", grad_clip=0).validate()
    with pytest.raises(ConfigError, match=r"--top-k 0 is out of range: use 1 or more\."):
        AttackParams(images=["a.png"], top_k=0).validate()
    with pytest.raises(ConfigError, match=r"--step-size 'fast' is not a number"):
        AttackParams(images=["a.png"], step_size="fast").validate()
    with pytest.raises(ConfigError, match=r"--jitter 300 is out of range: use a whole number from 0 to 256\."):
        DreamParams(target="cat", jitter=300).validate()
    with pytest.raises(ConfigError, match=r"--batch-size 0 is out of range: use 1 to 4096\."):
        RobustnessParams(run_dir="r", batch_size=0).validate()
    assert RobustnessParams(run_dir="r", eps="2/255, 0,1/255").validate().eps == [0, 1 / 255, 2 / 255]


# ------------------------------------------------------------------------------------ outputs and top-k


def test_timestamped_names_are_safe_and_never_reuse_a_name(tmp_path):
    first = timestamped(tmp_path, "tabby cat", "../up", suffix=".png")
    assert first.parent == tmp_path and re.fullmatch(r"\d{8}-\d{6}-tabby_cat-up\.png", first.name), first
    first.touch()
    second = timestamped(tmp_path, "tabby cat", "../up", suffix=".png")
    assert second != first and second.name.endswith("-tabby_cat-up-2.png")
    folder = timestamped(tmp_path, "pgd")
    folder.mkdir()
    assert timestamped(tmp_path, "pgd").name == folder.name + "-2"


def test_top_predictions_rows_are_best_first_and_clipped():
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    rows = top_predictions_rows(probs, ["a", "b", "c"], 2)
    assert rows == [[{"class": "b", "index": 1, "prob": pytest.approx(0.7)},
                     {"class": "c", "index": 2, "prob": pytest.approx(0.2)}],
                    [{"class": "a", "index": 0, "prob": pytest.approx(0.5)},
                     {"class": "c", "index": 2, "prob": pytest.approx(0.3)}]]
    assert len(top_predictions(probs[0], ["a", "b", "c"], 10)) == 3  # k clipped to the classes
    assert len(top_predictions(probs[0], ["a", "b", "c"], 0)) == 1
