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


def test_the_table_tags_busy_and_old_speeds_and_leaves_out_a_trivial_top5(capfd):
    """Issue 24: a speed timed on a busy machine, or before dates were kept, says so next to its number; top-5
    of 5 classes or fewer (1.0000 by construction) is a dash."""
    from engine.cli.commands.compare import print_table

    def row(name, note):
        return {"backbone": name, "accuracy": 0.9, "accuracy_std": 0.01, "top5": 1.0, "images_per_s": 100.0,
                "latency_ms": 10.8, "params": 4.7e6, "weights": "shipped", "speed_note": note,
                "speed_device": "cpu:2threads", "pareto": True, "error": None}

    print_table({"results": [row("efficientnet_lite0", "busy"), row("efficientnet_lite1", "")], "classes": 2,
                 "best": "efficientnet_lite0", "folds": 5, "images": 40, "complete": True, "run_dir": "runs/x"})
    out = " ".join(capfd.readouterr().out.split())  # the table wraps at the captured console's width
    assert "(busy)" in out and out.count("(busy)") == 1 and "1.0000" not in out
    assert "timed on cpu:2threads" in out and "--remeasure" in out
