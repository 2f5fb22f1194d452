"""A run on each kind of machine trains, stops, resumes and evaluates in the precision that machine chose, and
keeps it: the resume on another machine (whose own choice differs) replays the run's recorded precision and
ends where the uninterrupted run ended; eval computes in it. bf16 and fp16 autocast run on any CPU, slowly, so
the network is SqueezeNet 1.1 at 32 px (0.07 s a step in either precision here)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.data import make_dataset
from precision_profiles import PROFILES, FakeMeasure, become

import engine.train.finetune as finetune_module
from engine.core.events import EpochEnded, JobFinished, JobStarted
from engine.core.files import read_json
from engine.core.jobs import JobControl, run_job
from engine.evaluate.evaluation import evaluate_run
from engine.models.classifier import Classifier
from engine.train.config import TrainConfig
from engine.train.job import resume, train

TINY = {"backbone": "squeezenet1_1", "weights": "random", "img_size": 32, "batch_size": 4, "workers": 0,
        "augment": "light", "seed": 5, "lr": 3e-3}


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("pr") / "colours", {"red": 6, "blue": 6, "green": 6})


def config(data, **kw) -> TrainConfig:
    return TrainConfig(**{"dataset": str(data), "mode": "full", "epochs": 2, "freeze_epochs": 1, **TINY, **kw})


def rows(run_dir: str) -> list[dict]:
    keep = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
    return [{k: json.loads(line)[k] for k in keep} for line in open(f"{run_dir}/metrics.jsonl")]


def close(a: list[dict], b: list[dict]) -> bool:
    """Equal up to the last bits (a CPU's threaded reductions round differently between runs)."""
    return len(a) == len(b) and all(x == pytest.approx(y, rel=1e-5, abs=1e-6) for x, y in zip(a, b))


@pytest.mark.parametrize("machine", ["avx2", "amx", "cuda_sm75"])  # fp32, bf16, fp16
def test_a_run_replays_the_precision_its_machine_chose_through_stop_resume_and_eval(colours, monkeypatch,
                                                                                    machine):
    choice = PROFILES[machine][2]
    become(monkeypatch, machine)
    fake = FakeMeasure(fp32=100.0, bf16=140.0, fp16=140.0)
    monkeypatch.setattr(finetune_module, "measure_model", lambda *a, **k: fake(a[3]))

    whole = run_job("train", lambda ctx: train(config(colours), ctx))
    assert isinstance(whole, JobFinished) and whole.reason == "completed", whole
    recorded = read_json(f"{whole.result['run_dir']}/config.json")
    assert recorded["precision_resolved"] == choice

    control, seen = JobControl(), {}

    def stop_after_epoch_1(e):
        if isinstance(e, JobStarted) and e.run_dir:
            seen["run_dir"] = e.run_dir
        if isinstance(e, EpochEnded) and e.epoch == 1:
            control.stop()

    stopped = run_job("train", lambda ctx: train(config(colours), ctx), stop_after_epoch_1, control)
    assert isinstance(stopped, JobFinished) and stopped.reason == "stopped", stopped
    # the run goes on on a machine that would choose otherwise today (an AVX2 CPU: fp32; or, for an fp32 run,
    # an A100: bf16), measured afresh
    become(monkeypatch, "cuda_sm80" if choice == "fp32" else "avx2")
    done = run_job("train", lambda ctx: resume(seen["run_dir"], ctx))
    assert isinstance(done, JobFinished) and done.reason == "completed", done
    after = read_json(f"{seen['run_dir']}/config.json")
    assert after["precision_resolved"] == choice and after["resumed"]
    assert close(rows(seen["run_dir"]), rows(whole.result["run_dir"]))

    # eval computes in the recorded precision, and agrees with the run's own report
    dtypes = []
    real_forward = Classifier.forward

    def spy(self, x):
        dtypes.append(self.run_dtype)
        return real_forward(self, x)

    monkeypatch.setattr(Classifier, "forward", spy)
    report = read_json(f"{whole.result['run_dir']}/report.json")
    summary = evaluate_run(whole.result["run_dir"], device="cpu", workers=0)
    want = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]
    assert dtypes and set(dtypes) == {want}
    assert summary["accuracy"] == pytest.approx(report["accuracy"]) and summary["n"] == report["n"]
