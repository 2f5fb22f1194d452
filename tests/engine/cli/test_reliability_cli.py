"""Issue 6: a bad flag or value on every subcommand exits 2 with a message naming the value, no traceback,
and — with --json — still exactly one JSON object on stdout."""

import json
import os
import subprocess
import sys

import pytest
from helpers.data import ROOT, make_dataset

from engine.cli import COMMANDS

CASES = {
    "scan": (["{missing}"], "{missing} does not exist"),
    "backbones": (["--bogus"], "unrecognized arguments: --bogus"),
    "doctor": (["--colour", "red"], "unrecognized arguments: --colour red"),
    "fetch": (["imagenet"], "Unknown dataset 'imagenet'"),
    "train": (["{data}", "--batch-size", "-3"], "--batch-size: -3 must be 1 or more"),
    "lr-find": (["{data}", "--steps", "zero"], "--steps: 'zero' is not a whole number"),
    "eval": (["{missing}"], "Run directory {missing} not found"),
    "export": (["{missing}", "--format", "tflite"], "invalid choice: 'tflite'"),
    "predict": (["{missing}", "x.jpg", "--top-k", "0"], "0 must be 1 or more"),
    "attack": (["--backbone", "efficientnet_lite0", "{image}", "--eps", "2"], "--eps 2.0 is out of range"),
    "robustness": (["{missing}", "--eps", "0,abc"], "eps 'abc' is not a number"),
    "dream": (["--target", "tabby", "--steps", "0"], "--steps 0 is out of range"),
    "compare": (["{data}", "--backbones", "efficientnet_lite0,nosuchnet"], "nosuchnet"),
    "explain": (["--backbone", "efficientnet_lite0", "{image}", "--method", "lime"], "invalid choice: 'lime'"),
    "audit": (["{missing}"], "{missing} does not exist"),
    "report": (["{missing}"], "Run directory {missing} not found"),
}


def test_every_subcommand_has_a_bad_input_case():
    assert sorted(CASES) == sorted(COMMANDS)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    data = make_dataset(base / "colours", {"red": 2, "blue": 2})
    return {"missing": str(base / "no-such-thing"), "data": str(data), "image": str(data / "red" / "red_0.png")}


@pytest.mark.parametrize("command", sorted(CASES))
def test_bad_input_exits_2_naming_the_value(command, paths, capfd, monkeypatch):
    """In-process through the console script's own entry point (a subprocess each would cost a torch import)."""
    from tui.main import main

    monkeypatch.setenv("COLUMNS", "250")
    args, needle = CASES[command]
    args = [a.format(**paths) for a in args]
    needle = needle.format(**paths)
    try:
        code = main([command, *args, "--json"])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    out, err = capfd.readouterr()
    assert code == 2, (code, err[-2000:])
    assert needle in err, err[-2000:]
    assert "Traceback" not in err
    assert json.loads(out)["error"]["exit_code"] == 2  # one JSON object, even for a refusal, with the code


def test_the_console_script_exits_2_too(paths):
    """The same path as a real process: the exit status a shell sees."""
    out = subprocess.run([sys.executable, "-m", "tui.main", "train", paths["data"], "--epochs", "-1", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "250"})
    assert out.returncode == 2 and "--epochs: -1 must be 1 or more" in out.stderr
    assert "error" in json.loads(out.stdout)
