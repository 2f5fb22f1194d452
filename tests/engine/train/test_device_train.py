"""Training as it runs on a GPU box or a Mac, checked on this CPU: no tensor made without its device and no
float64 on a device (MPS has none) in the probe, head and full fine-tuning (validation and the metric
reductions included), autocast and channels_last executed on the CPU, the distributed reductions, and each
torchrun rank selecting its own GPU before naming it."""

import json
import math
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from device_discipline import ENGINE_DIR, DeviceDiscipline
from helpers.data import make_dataset

from engine.core.errors import ConfigError
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.core.runs import read_metrics
from engine.runtime import distributed as D
from engine.train.config import TrainConfig
from engine.train.finetune import FineTuning
from engine.train.job import train
from engine.train.lr_find import lr_find

# The training code (this task's files). Factories called without device= elsewhere in engine/ during these
# jobs (model construction, features, evaluation) belong to their own modules' checks.
# Folders (and files) as prefixes of the paths DeviceDiscipline reports; test_the_training_files_exist keeps them
# true when modules move.
TRAINING_FILES = ("engine/train/", "engine/features/", "engine/runtime/", "engine/core/jobs.py")


def training_violations(d: DeviceDiscipline) -> list[str]:
    """DeviceDiscipline's findings that are this code's own: every float64 anywhere in engine/, and factories
    called without device= on a line of the training files. DeviceDiscipline attributes a factory that torch
    itself calls (the DataLoader's seed and collation, DistributedSampler's permutation) to the engine line
    that called into torch; the line must show the call for it to be ours."""
    root = Path(ENGINE_DIR).parent
    found = []
    for v in d.violations:
        where, _, what = v.partition(": ")
        if "float64" in what:
            found.append(v)
            continue
        path, _, line = where.rpartition(":")
        name = what.split("(")[0]  # "torch.rand"
        text = (root / path).read_text().splitlines()[int(line) - 1]
        if path.startswith(TRAINING_FILES) and f"{name.split('.')[-1]}(" in text:
            found.append(v)
    return found


def test_the_training_files_exist():
    root = Path(ENGINE_DIR).parent
    assert all((root / p).exists() for p in TRAINING_FILES)
    assert len(list((root / "engine/train").glob("*.py"))) >= 5  # the training code is still in there


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("dev") / "colours", {"red": 8, "blue": 8})


def run_train(dataset, **kw):
    cfg = TrainConfig(**{"dataset": str(dataset), "img_size": 32, "epochs": 2, "batch_size": 4, "workers": 0,
                         "lr": 1e-2, "augment": "light", **kw})
    final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result


@pytest.mark.parametrize("mode", ["probe", "head", "full", "lr-find"])
def test_training_creates_no_tensor_without_a_device_and_no_float64(colours, mode):
    """On MPS a float64 accumulator (the fine-tuning loop's `correct`, the metric all-reduce) crashed the
    run; on CUDA a tensor made without device= lands on the CPU."""
    with DeviceDiscipline() as d:
        if mode == "lr-find":
            cfg = TrainConfig(dataset=str(colours), mode="partial", unfreeze=1, img_size=32, batch_size=4,
                              workers=0)
            final = run_job("lr-find", lambda ctx: lr_find(cfg, ctx, steps=10))
            assert isinstance(final, JobFinished) and final.result["points"] > 0, final
        else:
            r = run_train(colours, mode=mode, epochs=3 if mode == "probe" else 2)
            assert math.isfinite(r["val_acc"])
    assert training_violations(d) == []


@pytest.mark.parametrize("mode", ["head", "full"])
def test_bf16_autocast_and_channels_last_run_on_the_cpu(colours, monkeypatch, mode):
    """The branches a GPU takes (autocast, channels_last) executed here: the head really sees bf16 under
    autocast, the backbone channels_last input, and the metrics stay finite."""
    seen = {"head": [], "channels_last": []}
    real_init = FineTuning.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.model.head.register_forward_hook(
            lambda m, inputs, out: seen["head"].append((torch.is_autocast_enabled("cpu"), out.dtype)))
        self.model.backbone.register_forward_pre_hook(
            lambda m, inputs: seen["channels_last"].append(inputs[0].is_contiguous(memory_format=torch.channels_last)
                                                           and not inputs[0].is_contiguous()))

    monkeypatch.setattr(FineTuning, "__init__", spy)
    with DeviceDiscipline() as d:
        r = run_train(colours, mode=mode, precision="bf16", channels_last="on")
    assert training_violations(d) == []
    assert len(seen["head"]) >= 8 and all(s == (True, torch.bfloat16) for s in seen["head"])  # train + val
    assert seen["channels_last"] and all(seen["channels_last"])
    for row in read_metrics(r["run_dir"]):
        assert all(math.isfinite(row[k]) for k in ("train_loss", "train_acc", "val_loss", "val_acc")), row
    config = json.loads(open(f"{r['run_dir']}/config.json").read())
    assert (config["precision"], config["precision_resolved"], config["channels_last_resolved"]) == ("bf16", "bf16",
                                                                                                    True)


def test_precision_flags_keep_old_configs_and_commands_working(colours):
    """--no-amp still means fp32; a config recorded before --precision and channels_last "auto" existed still
    loads; on a CPU the defaults resolve to fp32 and channels_last (measured faster here), and
    --no-channels-last is contiguous."""
    old = TrainConfig.from_dict({"dataset": str(colours), "mode": "head", "amp": False, "channels_last": True})
    old.validate()
    assert (old.precision, old.channels_last) == ("auto", "auto")
    with pytest.raises(ConfigError, match="--no-amp means fp32"):
        TrainConfig(dataset=str(colours), amp=False, precision="bf16").validate()
    with pytest.raises(ConfigError, match="Unknown precision 'fp8'"):
        TrainConfig(dataset=str(colours), precision="fp8").validate()
    r = run_train(colours, mode="head", epochs=1, amp=False)
    config = json.loads(open(f"{r['run_dir']}/config.json").read())
    assert (config["precision_resolved"], config["channels_last_resolved"]) == ("fp32", True)
    r = run_train(colours, mode="head", epochs=1, channels_last="off")
    config = json.loads(open(f"{r['run_dir']}/config.json").read())
    assert (config["precision_resolved"], config["channels_last_resolved"]) == ("fp32", False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_reductions_make_no_float64_and_count_exactly(monkeypatch):
    """The metric all-reduce ran in float64 on the device (NCCL reduces there; MPS has no float64); in
    float32, counts above 2**24 would be rounded, so counts are summed as int64."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        info = D.DistInfo(0, 2, 0)  # "distributed" as far as the engine asks; a group of one reduces
        with DeviceDiscipline() as d:
            loss, correct, n = D.all_sum(info, [12.5, 2**40 + 1, 3], torch.device("cpu"))
            flags = D.all_max_(info, torch.tensor([0.0, 1.0, 4.0], device="cpu"))
        d.check()
        assert (loss, correct, n) == (12.5, 2**40 + 1, 3) and flags.tolist() == [0.0, 1.0, 4.0]
    finally:
        dist.destroy_process_group()


def test_each_rank_selects_its_gpu_before_naming_it(monkeypatch):
    """Every rank used to call get_device_name(0) before set_device(local_rank): a CUDA context on GPU 0 for
    every rank. Simulated: rank 1 of 2 on a 2-GPU box."""
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: calls.append(("get_device_name", i)) or "GPU")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: calls.append(("init_process_group", a[0])))
    info, device, name, why = D.join("auto")
    assert (info.rank, info.world_size, str(device), name) == (1, 2, "cuda:1", "cuda")
    assert calls == [("set_device", 1), ("init_process_group", "nccl"), ("get_device_name", 1)], calls
