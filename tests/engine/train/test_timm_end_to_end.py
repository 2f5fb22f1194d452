"""A timm CNN and a timm ViT through the jobs, weights from a Hugging Face cache built in the test: the probe,
the full fine-tune over timm's stages, export and reload, attacks (the trained run; the CNN's ImageNet head);
offline, a model missing from the cache fails before anything is extracted or trained."""

import pytest
import torch
from helpers.data import make_dataset
from timm_hub import hub_cache, put_in_hub_cache

from engine.adversarial.attack_job import AttackParams, attack_job
from engine.core.checkpoints import load_checkpoint
from engine.core.events import JobFailed, JobFinished, LogLine, ProgressAdvanced
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.core.runs import runs_root
from engine.serve.export import EXPORT_FORMATS, export_run, load_exported
from engine.train.config import TrainConfig
from engine.train.job import train

CNN = "resnet18.a1_in1k"
VIT = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"


def run_train(dataset, events, **kw):
    cfg = TrainConfig(**{"dataset": str(dataset), "img_size": 32, "batch_size": 8, "workers": 0, "augment": "none",
                         "seed": 0, **kw})
    final = run_job("train", lambda ctx: train(cfg, ctx), events.append)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result


def attack(**kw):
    params = AttackParams(method="pgd", eps=0.05, steps=2, device="cpu", **kw)
    final = run_job("attack", lambda ctx: attack_job(params, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result


@pytest.mark.parametrize("name", [CNN, VIT])
def test_a_timm_backbone_fine_tunes_exports_and_is_attacked(name, tmp_path, monkeypatch):
    reference = put_in_hub_cache(hub_cache(tmp_path, monkeypatch), name).state_dict()
    backbone = f"timm/{name}"
    data = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6})
    if name == CNN:  # the probe's path (a frozen backbone, cached features) is the same for any timm model
        probe = run_train(data, [], backbone=backbone, mode="probe", epochs=3)
        config = read_json(f"{probe['run_dir']}/config.json")
        assert config["weights_identity"] == f"hf:timm/{name}"
        assert config["preprocessing"]["crop_size"] == 32 and config["preprocessing"]["interpolation"] == "bicubic"

    events = []
    full = run_train(data, events, backbone=backbone, mode="full", epochs=1, freeze_epochs=0)
    logs = [e.text for e in events if isinstance(e, LogLine)]
    want = "stem (" + ("0.19M), blocks.0" if name == VIT else "0.01M), layer1")
    assert any(t.startswith(f"stages of {backbone}: {want}") for t in logs), logs
    after = load_checkpoint(f"{full['run_dir']}/best.pt")["model"]
    changed = [k for k, v in reference.items() if not torch.equal(v, after.get(f"backbone.model.{k}", v))]
    assert any(k.startswith(("blocks.0.", "layer1.")) for k in changed)  # the first stage trained too

    # every export format for the CNN, TorchScript for the ViT (its resampled position embeddings trace)
    for fmt in EXPORT_FORMATS if name == CNN else ["torchscript"]:
        exported = export_run(full["run_dir"], fmt)
        assert exported["max_abs_diff"] <= 1e-3, exported  # the reloaded export agrees with tlbench predict
        assert load_exported(exported["path"])[1] == ["blue", "red"]

    image = str(next((data / "red").iterdir()))
    result = attack(images=[image], run_dir=full["run_dir"], target="blue")
    assert result["attacked"] == 1 and result["results"][0]["after"][0]["class"] in ("blue", "red")
    if name == CNN:  # an ImageNet-1k head: attack the backbone itself, with ImageNet's class names
        result = attack(images=[image], backbone=backbone, target="tabby cat", img_size=32)
        assert result["attacked"] == 1 and result["target"]["class"] == "tabby"


def test_offline_a_missing_timm_model_fails_before_extracting(tmp_path, monkeypatch):
    hub_cache(tmp_path, monkeypatch)
    events = []
    cfg = TrainConfig(dataset=str(make_dataset(tmp_path / "colours", {"red": 3, "blue": 3})), backbone=f"timm/{CNN}",
                      img_size=32, workers=0)
    final = run_job("train", lambda ctx: train(cfg, ctx), events.append)
    assert isinstance(final, JobFailed)
    message = str(final.error)
    assert f"timm/{CNN}" in message and f"hf download timm/{CNN}" in message
    assert not [e for e in events if isinstance(e, ProgressAdvanced) and "extract" in e.phase]
    assert not list(runs_root().glob("*"))  # it failed before the run directory was even created
