"""`tlbench compare --json`: exactly one JSON object on stdout in the agreed shape, progress on stderr; a typo in
--backbones is bad input (exit 2) before any work."""

import json
from pathlib import Path

import pytest
import torch
from helpers.data import make_dataset

from tui.main import main

ROW = {"backbone", "accuracy", "accuracy_std", "top5", "images_per_s", "latency_ms", "params", "feature_dim",
       "weights"}


@pytest.fixture
def one_thread(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a loaded 2-core machine: two threads wait on each other
    monkeypatch.setattr("engine.evaluate.speed.BUDGET_S", 0.2)
    yield
    torch.set_num_threads(threads)


def test_compare_json_is_one_object_best_first_with_the_run_files(tmp_path, capfd, one_thread):
    data = make_dataset(tmp_path / "colours", {"red": 4, "blue": 4})
    code = main(["compare", str(data), "--backbones", "resnet18,efficientnet_lite0", "--folds", "2",
                 "--img-size", "32", "--workers", "0", "--json"])
    out, err = capfd.readouterr()
    assert code == 0, err[-2000:]
    result = json.loads(out)  # the whole of stdout is one object
    assert {"dataset", "folds", "results", "best", "run_dir"} <= set(result)
    assert result["folds"] == 2 and result["dataset"] == str(data)
    assert [r["backbone"] for r in result["results"]] == ["efficientnet_lite0", "resnet18"]  # scored first
    assert result["best"] == "efficientnet_lite0"
    for r in result["results"]:
        assert ROW <= set(r) and "error" in r
    lite, resnet = result["results"]
    assert lite["error"] is None and isinstance(lite["accuracy_std"], float) and lite["images_per_s"] > 0
    assert resnet["error"] and resnet["accuracy"] is None and resnet["weights"] == "missing"
    run_dir = Path(result["run_dir"])
    assert json.loads((run_dir / "compare.json").read_text())["results"] == result["results"]
    assert (run_dir / "tradeoff.png").stat().st_size > 0
    assert "efficientnet_lite0: accuracy" in err  # progress and per-candidate lines on stderr


def test_an_unknown_backbone_exits_2_naming_it(tmp_path, capfd):
    data = make_dataset(tmp_path / "colours", {"red": 2, "blue": 2})
    code = main(["compare", str(data), "--backbones", "efficientnet_lite0,nosuchnet", "--json"])
    out, err = capfd.readouterr()
    assert code == 2 and "nosuchnet" in err and "Traceback" not in err
    assert json.loads(out)["error"]["exit_code"] == 2
