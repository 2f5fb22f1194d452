"""The headless commands as a script sees them: exit codes, one JSON object on stdout, errors naming values."""

import json
import os
import subprocess
import sys
from pathlib import Path

import badfiles as bf
import pytest
from helpers.data import ROOT, make_dataset

import engine


def tlbench(*args, timeout=300, env_extra=None):
    return subprocess.run([sys.executable, "-m", "tui.main", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env_extra or {})})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("d") / "colours", {"red": 8, "blue": 8})
    out = tlbench("train", root, "--img-size", 32, "--epochs", 10, "--lr", "0.01", "--json")
    assert out.returncode == 0, out.stderr
    return root, json.loads(out.stdout)


def test_train_json_is_exactly_one_object_with_the_issue_fields(trained_run):
    _, result = trained_run
    for key in ("run_dir", "val_acc", "best_val_acc", "epochs", "classes", "train_images", "val_images",
                "skipped_images", "feature_cache", "extract_images_per_s", "seconds"):
        assert key in result, key
    assert result["feature_cache"] in ("hit", "miss") and result["classes"] == ["blue", "red"]


def test_progress_goes_to_stderr_not_stdout(tmp_path):
    root = make_dataset(tmp_path / "c", {"red": 4, "blue": 4})
    out = tlbench("train", root, "--img-size", 32, "--epochs", 2, "--json")
    assert out.returncode == 0
    json.loads(out.stdout)  # nothing but the object
    assert "epoch 2/2" in out.stderr and "device:" in out.stderr


def test_predict_json_and_bad_image_line(trained_run, tmp_path):
    root, result = trained_run
    bad = bf.write_zero_byte(tmp_path / "empty.jpg")
    out = tlbench("predict", result["run_dir"], root / "red" / "red_1.png", bad, "--top-k", "1", "--json")
    assert out.returncode == 2  # one image failed; the other was still predicted
    payload = json.loads(out.stdout)
    assert payload["results"][0]["predictions"][0]["class"] == "red"
    assert "0 bytes" in payload["results"][1]["error"] and payload["failed"] == 1


@pytest.mark.parametrize("args, needle", [
    (["--epochs", "0"], "--epochs: 0 must be 1 or more"),
    (["--lr", "abc"], "'abc' is not a number"),
    (["--val-fraction", "1.5"], "1.5 must be between 0 and 1"),
    (["--mode", "fine"], "invalid choice: 'fine'"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--backbone", "resnet5O"], "resnet5O"),
    (["--img-size", "4000"], "--img-size 4000"),
])
def test_bad_values_exit_2_naming_the_value(tmp_path, args, needle):
    root = make_dataset(tmp_path / "c", {"red": 2, "blue": 2})
    out = tlbench("train", root, *args, "--json")
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr
    assert "error" in json.loads(out.stdout)  # scripts still get one JSON object


def test_missing_dataset_is_a_clear_error(tmp_path):
    out = tlbench("scan", tmp_path / "nowhere", "--json")
    assert out.returncode == 2
    assert json.loads(out.stdout)["error"]["title"] == "Dataset problem"
    assert json.loads(out.stdout)["error"]["exit_code"] == 2
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_scan_json_shape(tmp_path):
    root = make_dataset(tmp_path / "c", {"red": 3, "blue": 2})
    bf.write_truncated_jpeg(root / "red" / "t.jpg")
    out = tlbench("scan", root, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["layout"] == "class-folders" and data["root"] == str(root.resolve()) and data["images"] == 5
    assert data["classes"] == [{"name": "blue", "count": 2}, {"name": "red", "count": 3}]
    assert data["unreadable"][0]["path"].endswith("t.jpg") and "truncated" in data["unreadable"][0]["reason"]


def test_doctor_reports_versions_device_weights_and_colour(monkeypatch):
    monkeypatch.delenv("COLORTERM", raising=False)
    out = tlbench("doctor", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert {"python", "torch", "torchvision", "textual"} <= set(d["versions"])
    assert d["versions"]["tlbench"] == engine.__version__
    assert d["device"]["device"] == "cpu" and d["device"]["reason"]
    assert d["weights"]["efficientnet_lite0"]["status"] == "shipped"
    assert d["terminal"]["truecolor"] is False and "COLORTERM=truecolor" in d["terminal"]["fix"]
    # the picture protocol and why (conftest pins TLBENCH_IMAGES=halfblock)
    assert d["terminal"]["images"] == {"protocol": "halfblock", "reason": "forced by TLBENCH_IMAGES=halfblock",
                                       "certain": True}
    human = tlbench("doctor")
    assert "COLORTERM=truecolor" in human.stdout and "shipped" in human.stdout
    assert "pictures  halfblock — forced by TLBENCH_IMAGES=halfblock" in human.stdout


def test_predict_takes_a_run_by_name_as_eval_and_export_do(trained_run):
    """`tlbench predict NAME` finds the run in the runs folder (it said '…/config.json is missing')."""
    root, result = trained_run
    run_dir = Path(result["run_dir"])
    out = tlbench("predict", run_dir.name, root / "red" / "red_1.png", "--json",
                  env_extra={"TLBENCH_RUNS": str(run_dir.parent)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["predictions"][0]["class"] == "red"
