"""`torchrun --nproc_per_node=2 -m tui.main train …` on CPU with gloo: both ranks finish, rank 0 alone
writes the run, and the result matches one process with the same global batch — in head mode, and in full
mode across the freeze -> unfreeze switch; a run stopped by SIGTERM resumes under torchrun as if never
stopped; a rank whose whole batch failed to decode still takes part in the step; a decoded-image cache that
cannot be built stops every rank with the same error."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from helpers.data import ROOT, make_dataset

from engine.core.checkpoints import load_checkpoint
from engine.core.runs import read_metrics


def train_args(data, batch, precision="fp32"):
    # head mode: the frozen backbone's BatchNorm is in eval mode, so the ranks' shards see the same model;
    # no augmentation, so the only difference left is how the global batch is split. bf16 (slow on a CPU
    # without bf16 instructions) on SqueezeNet 1.1
    tiny = ["--backbone", "squeezenet1_1", "--weights", "random"] if precision == "bf16" else []
    return ["-m", "tui.main", "train", str(data), "--mode", "head", "--epochs", "2", "--img-size", "32",
            "--batch-size", str(batch), "--lr", "0.01", "--augment", "none", "--workers", "0",
            "--precision", precision, *tiny, "--json"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_ranks_with_gloo_match_one_process(tmp_path, precision):
    data = make_dataset(tmp_path / "d", {"red": 10, "blue": 10, "green": 10})  # 24 train: 3 steps of 8
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    single_runs, ddp_runs = tmp_path / "single", tmp_path / "ddp"

    single = subprocess.run([sys.executable, *train_args(data, 8, precision), "--runs-dir", str(single_runs)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *train_args(data, 4, precision), "--runs-dir", str(ddp_runs)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    result = json.loads(ddp.stdout)  # exactly one JSON object: rank 1 prints nothing
    assert [p.name for p in ddp_runs.iterdir()] == [os.path.basename(result["run_dir"])]  # one run, rank 0's
    assert "distributed: 2 processes" in ddp.stderr and ddp.stderr.count("run directory:") == 1
    config = json.loads(open(f"{result['run_dir']}/config.json").read())
    assert config["world_size"] == 2 and config["precision_resolved"] == precision

    one = json.loads(single.stdout)
    a, b = read_metrics(one["run_dir"]), read_metrics(result["run_dir"])
    # bf16 keeps ~3 significant digits, and a batch of 4 rounds otherwise than a batch of 8: its numbers agree
    # to 1e-3 (a rank training on other data, or out of step, differs by 1e-2 and more)
    tol = 1e-3 if precision == "bf16" else 1e-4
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert rb[k] == pytest.approx(ra[k], abs=tol), (ra["epoch"], k)
    wa = load_checkpoint(f"{one['run_dir']}/last.pt")["model"]
    wb = load_checkpoint(f"{result['run_dir']}/last.pt")["model"]
    assert torch.allclose(wa["head.weight"], wb["head.weight"], atol=1e-3 if precision == "bf16" else 1e-5)
    assert os.path.exists(f"{result['run_dir']}/report.json")


# ------------------------------------------------------------------------------- full mode, resume, failures

JOB = str(ROOT / "tests" / "ddp_job.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def full_args(data, batch, runs):
    # full mode crosses the freeze -> unfreeze switch after epoch 1; resnet18 (random weights: nothing to
    # download) has no dropout, and its BatchNorm stays in eval mode, so how the global batch is split is the
    # only difference between one process and two; light augmentation, seeded per sample, is the same
    return ["train", str(data), "--mode", "full", "--epochs", "3", "--freeze-epochs", "1", "--backbone", "resnet18",
            "--weights", "random", "--img-size", "32", "--batch-size", str(batch), "--lr", "0.01", "--augment",
            "light", "--workers", "0", "--seed", "3", "--runs-dir", str(runs), "--json"]


def env():
    return {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory):
    """One process with batch 8, and two ranks with batch 4 each, over the same 24 training images."""
    base = tmp_path_factory.mktemp("full")
    data = make_dataset(base / "d", {"red": 10, "blue": 10, "green": 10})
    single = subprocess.run([sys.executable, JOB, str(base / "rec1"), *full_args(data, 8, base / "runs1")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, env=env())
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([*TORCHRUN, JOB, str(base / "rec2"), *full_args(data, 4, base / "runs2")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=env())
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    return {"base": base, "data": data, "single": json.loads(single.stdout), "ddp": json.loads(ddp.stdout),
            "ddp_stderr": ddp.stderr}


def test_full_mode_two_ranks_match_one_process_across_the_phase_switch(full_runs):
    one, two, base = full_runs["single"], full_runs["ddp"], full_runs["base"]
    assert "epochs 2-3: training all stages" in full_runs["ddp_stderr"]
    rec0, rec1 = (json.loads((base / "rec2" / f"rank{r}.json").read_text()) for r in (0, 1))
    # one DistributedDataParallel per phase, the first one's gradient hooks taken off at the switch
    assert (rec0["wraps"], rec0["unwraps"]) == (2, 1) == (rec1["wraps"], rec1["unwraps"])
    # ranks hold different samples and draw different augmentation (not the same crops from the same seed)
    assert len(rec0["crops"]) == len(rec1["crops"]) == 16 and rec0["crops"] != rec1["crops"]
    a, b = read_metrics(one["run_dir"]), read_metrics(two["run_dir"])
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert rb[k] == pytest.approx(ra[k], abs=1e-4), (ra["epoch"], k)
    # after the switch the backbone's gradients are averaged too: the ranks' weights stay identical, and equal
    # to one process's (a wrapper kept from the frozen phase would average the head's alone)
    wa = load_checkpoint(f"{one['run_dir']}/last.pt")["model"]
    r0, r1 = torch.load(base / "rec2" / "rank0.pt"), torch.load(base / "rec2" / "rank1.pt")
    for k in wa:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.allclose(wa[k].float(), r0[k].float(), atol=1e-4), k


def test_resume_under_torchrun_equals_the_uninterrupted_run(full_runs):
    """SIGTERM to torchrun reaches every rank; they stop at the same step, rank 0 saves last.pt (with every
    rank's RNG state), and `torchrun … train --resume` finishes the run as if it had never stopped."""
    base, data = full_runs["base"], full_runs["data"]
    proc = subprocess.Popen([*TORCHRUN, JOB, str(base / "rec3"), *full_args(data, 4, base / "runs3")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env(), "TLBENCH_TEST_STEP_SLEEP": "0.3"})  # time to stop it mid-run
    try:
        for line in proc.stderr:  # rank 0's progress: stop once epoch 1 is done
            if line.startswith("epoch 1/3"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # (torchrun itself prints the SignalException it stopped on, with a traceback; the ranks must not)
    assert "last.pt saved; continue with tlbench train --resume" in err, err[-3000:]
    assert err.count("Traceback") == err.count("SignalException: Process"), err[-3000:]
    [run_dir] = (base / "runs3").iterdir()
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert 1 <= ckpt["epoch"] < 3 and ckpt["step"] >= 1  # mid-epoch: at the step the ranks agreed on
    assert len(ckpt["rng_ranks"]) == len(ckpt["partial_ranks"]) == 2
    assert not (run_dir / "summary.json").exists()

    done = subprocess.run([*TORCHRUN, JOB, str(base / "rec4"), "train", "--resume", str(run_dir), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from last.pt" in done.stderr and json.loads(done.stdout)["epochs"] == 3
    a, b = read_metrics(full_runs["ddp"]["run_dir"]), read_metrics(run_dir)
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-6), (ra["epoch"], k)
    wa = load_checkpoint(f"{full_runs['ddp']['run_dir']}/last.pt")["model"]
    wb = load_checkpoint(run_dir / "last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-4, atol=1e-6), k


def test_a_rank_whose_whole_batch_failed_to_decode_still_takes_part(tmp_path):
    """With one image per rank and step, a file that broke after the scan empties that rank's batch; the
    other rank waits for it in DDP's gradient all-reduce, so it must still run the step (it used to skip it,
    and the run hung until the 30-minute timeout)."""
    data = make_dataset(tmp_path / "d", {"red": 10, "blue": 10, "green": 10})
    args = ["train", str(data), "--mode", "head", "--epochs", "1", "--img-size", "32", "--batch-size", "1",
            "--augment", "light", "--workers", "0", "--runs-dir", str(tmp_path / "runs"), "--json"]
    done = subprocess.run([*TORCHRUN, JOB, str(tmp_path / "rec"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**env(), "TLBENCH_TEST_BREAK_FIRST": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    broken = [json.loads((tmp_path / "rec" / f"rank{r}.json").read_text())["broken_batches"] for r in (0, 1)]
    assert sorted(broken) == [0, 1]  # one rank had the empty batch
    result = json.loads(done.stdout)
    assert result["epochs"] == 1 and result["skipped_images"] == 1


def test_a_decoded_cache_that_cannot_be_built_stops_every_rank_with_its_error(tmp_path):
    """Local rank 0 builds the store while the other ranks wait; when the build failed (here a full disk),
    rank 0 ended alone and the others waited at the barrier: until the 30-minute timeout where rank 0's
    process lived on, else failing with gloo's "Connection closed by peer". Now every rank fails at once
    with the same message, naming the rank and the way out."""
    data = make_dataset(tmp_path / "d", {"red": 6, "blue": 6})
    args = ["train", str(data), "--mode", "head", "--epochs", "1", "--img-size", "32", "--batch-size", "2",
            "--augment", "light", "--workers", "0", "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run([*TORCHRUN, JOB, str(tmp_path / "rec"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**env(), "TLBENCH_TEST_BREAK_STORE": "1"})
    assert done.returncode != 0
    errors = [json.loads((tmp_path / "rec" / f"rank{r}.json").read_text()).get("error") for r in (0, 1)]
    assert errors[0] == errors[1], done.stderr[-3000:]
    assert "could not be built on rank 0" in errors[0] and "No space left on device" in errors[0]
    assert "--no-decoded-cache" in errors[0]


def test_rank_0_alone_scans_the_dataset_and_every_rank_gets_its_list(monkeypatch):
    """Every rank used to scan the dataset itself (one stat per file each, on a shared filesystem), and a
    file changing between two ranks' scans would give them different lists under the same indices."""
    import engine.train.prepare as training
    from engine.core.errors import DatasetError
    from engine.core.jobs import JobContext, JobControl
    from engine.runtime.distributed import DistInfo

    scans, sent = [], []
    monkeypatch.setattr(training, "scan_dataset", lambda root, ctx=None: scans.append(root) or f"list of {root}")

    def broadcast(info, obj):  # rank 0's object reaches every rank
        if info.is_main:
            sent.append(obj)
        return sent[-1]

    monkeypatch.setattr(training.D, "broadcast", broadcast)
    ctx = JobContext(lambda e: None, JobControl())
    rank0, rank1 = DistInfo(0, 2, 0), DistInfo(1, 2, 1)
    assert training.scan_once("/data", rank0, ctx) == "list of /data"
    assert training.scan_once("/data", rank1, ctx) == "list of /data"
    assert scans == ["/data"]  # rank 1 did not scan

    def broken(root, ctx=None):
        raise DatasetError(f"No images in {root}")

    monkeypatch.setattr(training, "scan_dataset", broken)
    for rank in (rank0, rank1):  # rank 0's error stops every rank, none waits for a list
        with pytest.raises(DatasetError, match="No images in /empty"):
            training.scan_once("/empty", rank, ctx)


# ------------------------------------------------------------------------------- node-local caches


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_with_different_local_caches_finish_together_with_one_plan(tmp_path):
    """Two nodes (two torchrun agents, one rank each) with their own caches: node 0's warm (scan, decoded
    images), node 1's cold and holding an exclude list for the dataset that node 0 does not have. Rank 0 plans
    and sends its plan: both finish, together, and train as one process with node 0's cache does. (Each rank
    used to plan from its own node's exclude list and audit: different lists, different steps per epoch, and
    DDP waited until its timeout.)"""
    from engine.data.exclude import write_exclude

    data = make_dataset(tmp_path / "d", {"red": 10, "blue": 10, "green": 10})
    caches = [tmp_path / "cache0", tmp_path / "cache1"]
    base_env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    # node 0 warms its cache with the single-process run the two nodes must match
    single = subprocess.run([sys.executable, *train_args(data, 8), "--runs-dir", str(tmp_path / "single")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**base_env, "TLBENCH_CACHE": str(caches[0])})
    assert single.returncode == 0, single.stderr[-3000:]
    # node 1: an exclude list of its own (written where node 1's tlbench keeps it)
    old = os.environ.get("TLBENCH_CACHE")
    os.environ["TLBENCH_CACHE"] = str(caches[1])
    try:
        marked = write_exclude(data, [str(data / "red" / "red_0.png"), str(data / "blue" / "blue_1.png")])
    finally:
        os.environ["TLBENCH_CACHE"] = old or ""
    assert marked.is_relative_to(caches[1])
    port = free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={n}",
                               "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}",
                               *train_args(data, 4), "--runs-dir", str(tmp_path / f"runs{n}")],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**base_env, "TLBENCH_CACHE": str(caches[n])}) for n in (0, 1)]
    outs = [p.communicate(timeout=600) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], [err[-2000:] for _, err in outs]
    result = json.loads(outs[0][0])
    config = json.loads(open(f"{result['run_dir']}/config.json").read())
    assert config["excluded_images"] == 0 and config["world_size"] == 2  # rank 0's plan: nothing excluded there
    a, b = read_metrics(json.loads(single.stdout)["run_dir"]), read_metrics(result["run_dir"])
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert rb[k] == pytest.approx(ra[k], abs=1e-4), (ra["epoch"], k)


def test_lr_find_under_torchrun_takes_every_decision_on_every_rank(tmp_path):
    """A broken file empties one rank's batch at one step: lr-find used to skip that step on that rank alone
    (`continue`), and the other rank waited for it in DDP's gradient all-reduce until the timeout. The ranks
    now agree on each step's loss (weight-0 steps take part) and finish together with one curve."""
    data = make_dataset(tmp_path / "d", {"red": 10, "blue": 10, "green": 10})
    args = ["lr-find", str(data), "--mode", "head", "--steps", "24", "--end-lr", "0.01", "--img-size", "32",
            "--batch-size", "1", "--augment", "light", "--workers", "0", "--runs-dir", str(tmp_path / "runs"),
            "--json"]
    done = subprocess.run([*TORCHRUN, JOB, str(tmp_path / "rec"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**env(), "TLBENCH_TEST_BREAK_FIRST": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    broken = [json.loads((tmp_path / "rec" / f"rank{r}.json").read_text())["broken_batches"] for r in (0, 1)]
    assert sum(broken) >= 1  # the empty batch happened
    result = json.loads(done.stdout)
    curve = json.loads(open(result["data"]).read())
    assert len(curve["lr"]) == len(curve["smoothed_loss"]) == result["points"] >= 20
