"""timm backbones: specs from timm's pretrained configs, weights from a Hugging Face cache built here (random
weights saved in the hub's layout, loaded through tlbench's normal path), features equal to timm's own, stages
from timm's group_matcher with layer decay for ViTs, BatchNorm folding where there is BatchNorm, the offline
error, the ImageNet-head rule for attacks, and the search."""

import json

import pytest
import timm
import torch
from timm_hub import hub_cache, put_in_hub_cache
from torch import nn

import engine.cli.commands.backbones as backbones_command
from engine.cli import main
from engine.core.errors import ConfigError, WeightsError
from engine.models.build import backbone_info, build_classifier
from engine.models.families.timm_models import pretrained_names
from engine.models.fast import inference_copy
from engine.models.registry import get_spec, search_backbones, weights_identity, weights_status
from engine.models.stages import backbone_stages
from engine.train.recipe import param_groups

CNN = "resnet18.a1_in1k"
VIT = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"


@pytest.mark.parametrize("name", ["resnet50.a1_in1k", "convnext_tiny.fb_in22k_ft_in1k",
                                  "vit_small_patch14_dinov2.lvd142m", "vit_base_patch16_clip_224.openai"])
def test_spec_is_timms_pretrained_config(name):
    spec = get_spec(f"timm/{name}")
    data = timm.data.resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
    assert spec.family == "timm"
    assert spec.input_size == data["input_size"][-1]
    assert spec.resize_size == int(data["input_size"][-1] / data["crop_pct"])
    assert (spec.mean, spec.std, spec.interpolation) == (tuple(data["mean"]), tuple(data["std"]),
                                                         data["interpolation"])
    # ViTs are built with timm's dynamic input size: any size, unlike torchvision's ViTs
    assert not spec.fixed_input
    assert spec.preprocessing(64).crop_size == 64
    if "clip" in name:
        assert spec.mean != get_spec("timm/resnet50.a1_in1k").mean  # CLIP's statistics, not ImageNet's


def test_an_unknown_timm_name_says_how_to_find_one():
    with pytest.raises(ConfigError, match=r"resnet50\.a1_in1k.*backbones --search"):
        get_spec("timm/resnet50.no_such_tag")


@pytest.mark.parametrize("name, kwargs", [(CNN, {}), (VIT, {"dynamic_img_size": True})])
def test_weights_load_from_the_hub_cache_and_features_equal_timms(name, kwargs, tmp_path, monkeypatch):
    cache = hub_cache(tmp_path, monkeypatch)
    reference = put_in_hub_cache(cache, name, seed=3, **kwargs)
    spec = get_spec(f"timm/{name}")
    status = weights_status(spec)
    assert status.status == "cached" and status.path.startswith(str(cache)), status
    model, identity = build_classifier(f"timm/{name}", 4)
    assert identity == weights_identity(spec) == f"hf:timm/{name}"
    x = torch.rand(2, 3, 48, 48)
    normalized = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        want = reference.forward_head(reference.forward_features(normalized), pre_logits=True)
        got = model.eval().features(x)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # the ImageNet head (attacks, dreams) is timm's own classifier: the same logits
        imagenet, _ = build_classifier(f"timm/{name}", None)
        torch.testing.assert_close(imagenet.eval()(x), reference(normalized), atol=1e-4, rtol=1e-4)
    assert model.head.in_features == backbone_info(f"timm/{name}")["feature_dim"] == want.shape[1]
    if not kwargs:  # --weights FILE: a state dict saved from timm's model loads through timm too
        torch.save(reference.state_dict(), tmp_path / "mine.pt")
        from_file, identity = build_classifier(f"timm/{name}", 4, tmp_path / "mine.pt")
        assert identity.startswith("file:mine.pt:sha256=")
        with torch.no_grad():
            torch.testing.assert_close(from_file.eval().features(x), want, atol=1e-5, rtol=1e-5)


def test_offline_a_missing_model_fails_at_once_naming_it_and_the_command(tmp_path, monkeypatch):
    cache = hub_cache(tmp_path, monkeypatch)
    spec = get_spec(f"timm/{CNN}")
    for env in ("TLBENCH_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv("TLBENCH_OFFLINE")
        monkeypatch.setenv(env, "1")
        assert weights_status(spec).status == "missing"
        assert f"hf download timm/{CNN}" in weights_status(spec).detail
        with pytest.raises(WeightsError) as err:
            weights_identity(spec)  # what prepare() asks before it extracts or trains anything
        message = err.value.message
        assert f"timm/{CNN}" in message and f"hf download timm/{CNN} model.safetensors" in message
        assert str(cache) in message and f"models--timm--{CNN}" in message
        with pytest.raises(WeightsError):
            build_classifier(f"timm/{CNN}", 3)
        monkeypatch.delenv(env)
        monkeypatch.setenv("TLBENCH_OFFLINE", "1")


def test_stages_are_timms_groups_with_layer_decay_for_vits():
    vit, _ = build_classifier(f"timm/{VIT}", 3, "random", seed=0)
    stages = backbone_stages(vit.backbone)
    ids = [id(p) for s in stages for p in s.parameters()]
    assert sorted(ids) == sorted(id(p) for p in vit.backbone.parameters())  # each in exactly one stage
    assert [s.name for s in stages] == ["stem"] + [f"blocks.{i}" for i in range(11)] + ["blocks.11+norm"]
    scales = [s.lr_scale for s in stages]
    assert scales == [0.75 ** (len(stages) - i) for i in range(len(stages))]
    groups = param_groups(vit, stages, stages, 1e-3, 0.05)
    pos_embed = vit.backbone.model.pos_embed
    stem = [g for g in groups if any(p is pos_embed for p in g["params"])]
    assert stem[0]["weight_decay"] == 0.0 and stem[0]["lr"] == pytest.approx(1e-3 * scales[0])
    assert groups[-1]["name"].startswith("head") and groups[-1]["lr"] == 1e-3

    cnn, _ = build_classifier(f"timm/{CNN}", 3, "random", seed=0)
    stages = backbone_stages(cnn.backbone)
    assert [s.name for s in stages] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert all(s.lr_scale is None for s in stages)
    ids = [id(p) for s in stages for p in s.parameters()]
    assert sorted(ids) == sorted(id(p) for p in cnn.backbone.parameters())


def test_batchnorm_with_activation_folds_and_vits_are_left_as_they_are():
    # timm's MobileNetV3 (and EfficientNet) normalise with BatchNormAct2d (BatchNorm, then its activation)
    model, _ = build_classifier("timm/mobilenetv3_small_050.lamb_in1k", 3, "random", seed=0)
    model.eval()
    fast = inference_copy(model, torch.device("cpu"), 32)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())  # folded, and verified equal
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast.features(x), model.features(x), atol=1e-4, rtol=1e-3)


def test_attacks_need_an_imagenet_1k_head():
    with pytest.raises(ConfigError, match="no classification head.*Train a run"):
        build_classifier("timm/vit_small_patch14_dinov2.lvd142m", None, "random")
    with pytest.raises(ConfigError, match="512-class head"):
        build_classifier("timm/vit_base_patch16_clip_224.openai", None, "random")


def test_search_finds_hub_names():
    names = pretrained_names()
    assert len(names) > 1000 and "timm/vit_small_patch14_dinov2.lvd142m" in names
    found = search_backbones("dinov2 SMALL")
    assert "timm/vit_small_patch14_dinov2.lvd142m" in found
    assert all("dinov2" in n and "small" in n for n in found)


def test_backbones_search_cli_measures_only_the_shown_rows(tmp_path, monkeypatch, capfd):
    put_in_hub_cache(hub_cache(tmp_path, monkeypatch), CNN)
    measured = []
    monkeypatch.setattr(backbones_command, "info_row",
                        lambda name, real=backbones_command.info_row: measured.append(name) or real(name))
    assert main(["backbones", "--search", "resnet18", "--limit", "3", "--json"]) == 0
    out = json.loads(capfd.readouterr().out)
    assert out["matches"] == len(search_backbones("resnet18")) > 3 and out["shown"] == 3 == len(measured)
    rows = {r["name"]: r for r in out["backbones"]}
    assert list(rows) == search_backbones("resnet18")[:3]
    assert main(["backbones", "--search", f"{CNN}", "--json"]) == 0
    row = json.loads(capfd.readouterr().out)["backbones"][0]
    assert (row["name"], row["weights"], row["feature_dim"], row["params"]) == (
        f"timm/{CNN}", "cached", 512, sum(p.numel() for p in timm.create_model(CNN).parameters()))


def test_download_progress_becomes_events():
    from engine.core.events import ProgressAdvanced
    from engine.core.jobs import JobContext, JobControl
    from engine.models.families.timm_hub import _progress_class

    events = []
    bar_class = _progress_class(JobContext(events.append, JobControl()), "weights timm/x")
    # as huggingface_hub creates it for a resumed download
    with bar_class(unit="B", unit_scale=True, total=100, initial=10, desc="model.safetensors") as bar:
        bar.update(50)
        bar.update(40)
    done = [(e.phase, e.done, e.total, e.unit) for e in events if isinstance(e, ProgressAdvanced)]
    assert done[0] == ("weights timm/x", 60, 100, "bytes") and done[-1] == ("weights timm/x", 100, 100, "bytes")


@pytest.mark.parametrize("hub", ["passes it on", "wraps it"])
def test_stopping_a_weights_download_ends_the_job_as_stopped(hub, tmp_path, monkeypatch):
    """s (or q) during a timm weights download: the job ends "stopped", not failed with a download error,
    whether huggingface_hub lets the bar's JobStopped through or wraps it in an error of its own."""
    import huggingface_hub

    from engine.core.jobs import JobControl, JobFinished, JobStopped, run_job
    from engine.models.families import timm_hub

    hub_cache(tmp_path, monkeypatch)
    monkeypatch.setattr(timm_hub, "check_available", lambda spec: None)  # as if the hub were reachable
    monkeypatch.setattr(timm_hub, "_remote_size", lambda repo, filename: 1000)
    control = JobControl()
    chunks = []

    def download(repo, filename, cache_dir=None, tqdm_class=None):
        """The hub's download as the bar sees it: chunks of bytes; the user stops after the first."""
        try:
            with tqdm_class(total=1000, unit="B") as bar:
                for _ in range(10):
                    bar.update(100)
                    chunks.append(100)
                    control.stop()
        except JobStopped:
            if hub == "wraps it":
                raise OSError("Consistency check failed: file should be of size 1000 but has size 100") from None
            raise
        return str(tmp_path / "never")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    spec = get_spec(f"timm/{CNN}")
    final = run_job("weights", lambda ctx: {"path": str(timm_hub.ensure(spec, ctx))}, control=control)
    assert isinstance(final, JobFinished) and final.reason == "stopped", final
    assert len(chunks) == 1  # the download itself stopped at the next chunk


def test_rope_vits_that_do_not_build_on_meta_parameters_list_and_build():
    """The six vit_*_rope_mixed_* models raised a raw RuntimeError when their size was checked (their RoPE
    mixes a meta parameter with a CPU tensor): each now has a spec (as listing and search make), with timm's
    dynamic input size, and one builds and runs at a size other than its own."""
    names = [n for n in pretrained_names() if "_rope_mixed_" in n]
    assert len(names) >= 6
    for name in names:
        spec = get_spec(name)
        assert spec.extra["dynamic_img_size"] and not spec.fixed_input
    assert search_backbones("rope_mixed", names) == names
    small = next(n for n in names if "vit_small" in n and "_ape_" not in n)
    model, _ = build_classifier(small, 3, "random", seed=0)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 48, 64)).shape == (1, 3)
