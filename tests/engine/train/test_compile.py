"""--compile: fine-tuning compiles the model in place (its state_dict keeps its keys) and trains through
TorchDynamo; off by default. The compiler is TorchDynamo with the eager backend here: graph capture, not code
generation, which takes minutes on this CPU (bench/compile.py measures the real thing)."""

from __future__ import annotations

from helpers.data import make_dataset
from torch import nn

from engine.core.checkpoints import load_checkpoint
from engine.core.events import JobFinished
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.train.config import TrainConfig
from engine.train.job import train


def test_compile_trains_through_dynamo_and_keeps_the_checkpoint_keys(tmp_path, monkeypatch):
    compiled, graphs = [], []
    real = nn.Module.compile

    def counting_backend(gm, example_inputs):  # runs each captured graph as it is, and counts it
        graphs.append(gm)
        return gm.forward

    def compile_eager(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        real(self, backend=counting_backend)
    monkeypatch.setattr(nn.Module, "compile", compile_eager)
    data = make_dataset(tmp_path / "d", {"red": 4, "blue": 4})
    base = {"dataset": str(data), "img_size": 32, "epochs": 1, "batch_size": 4, "workers": 0, "mode": "head",
            "backbone": "resnet18", "weights": "random", "augment": "none", "precision": "fp32"}
    assert TrainConfig().compile is False
    final = run_job("train", lambda ctx: train(TrainConfig(**base, compile=True), ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    assert compiled == ["Classifier"] and graphs  # compiled once, and the steps ran through captured graphs
    run_dir = final.result["run_dir"]
    assert read_json(f"{run_dir}/config.json")["compile"] is True
    keys = load_checkpoint(f"{run_dir}/last.pt")["model"]
    assert "head.weight" in keys and not any("_orig_mod" in k for k in keys)
