"""`torchrun --nproc_per_node=2 -m tui.main train …` on CPU with gloo: both ranks finish, rank 0 alone
writes the run, and the result matches one process with the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, make_dataset

from engine.runs import load_checkpoint, read_metrics


def train_args(data, batch):
    # head mode: the frozen backbone's BatchNorm is in eval mode, so the ranks' shards see the same model;
    # no augmentation, so the only difference left is how the global batch is split
    return ["-m", "tui.main", "train", str(data), "--mode", "head", "--epochs", "2", "--img-size", "32",
            "--batch-size", str(batch), "--lr", "0.01", "--augment", "none", "--workers", "0", "--json"]


def test_two_ranks_with_gloo_match_one_process(tmp_path):
    data = make_dataset(tmp_path / "d", {"red": 10, "blue": 10, "green": 10})  # 24 train: 3 steps of 8
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    single_runs, ddp_runs = tmp_path / "single", tmp_path / "ddp"

    single = subprocess.run([sys.executable, *train_args(data, 8), "--runs-dir", str(single_runs)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env=env)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *train_args(data, 4), "--runs-dir", str(ddp_runs)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    result = json.loads(ddp.stdout)  # exactly one JSON object: rank 1 prints nothing
    assert [p.name for p in ddp_runs.iterdir()] == [os.path.basename(result["run_dir"])]  # one run, rank 0's
    assert "distributed: 2 processes" in ddp.stderr and ddp.stderr.count("run directory:") == 1
    config = json.loads(open(f"{result['run_dir']}/config.json").read())
    assert config["world_size"] == 2

    one = json.loads(single.stdout)
    a, b = read_metrics(one["run_dir"]), read_metrics(result["run_dir"])
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert rb[k] == pytest.approx(ra[k], abs=1e-4), (ra["epoch"], k)
    wa = load_checkpoint(f"{one['run_dir']}/last.pt")["model"]
    wb = load_checkpoint(f"{result['run_dir']}/last.pt")["model"]
    assert torch.allclose(wa["head.weight"], wb["head.weight"], atol=1e-5)
    assert os.path.exists(f"{result['run_dir']}/report.json")
