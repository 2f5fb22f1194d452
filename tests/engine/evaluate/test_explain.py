"""Explanations: each method on a tiny CNN and a tiny token model, the mapping back to the original image, and
Grad-CAM / IG / occlusion on EfficientNet-Lite0 with real photos (the cat-in-a-quadrant sanity check)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.data import CATS_DOGS
from PIL import Image
from torch import nn

from engine.cli import main
from engine.core.records import Preprocessing
from engine.evaluate.explain import METHODS, attribute, explain_paths, gradcam_layer, to_original
from engine.models.classifier import Classifier


class TinyCNN(nn.Module):
    """A `features` Sequential (stages features[i]) and pooling, as torchvision's MobileNets are built."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU()),
                                      nn.Sequential(nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU()))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.features(x)).flatten(1)


class TinyViT(nn.Module):
    """Patch embedding, a class token, two transformer blocks, a final norm, the class token out."""

    def __init__(self, dim=16):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, 8)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(*[nn.TransformerEncoderLayer(dim, 2, 32, 0.0, batch_first=True)
                                      for _ in range(2)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
        return self.norm(self.blocks(t))[:, 0]


def tiny(backbone: type[nn.Module], width: int) -> Classifier:
    torch.manual_seed(0)  # before the backbone too: its weights must not depend on what ran earlier in the process
    return Classifier(backbone(), nn.Linear(width, 3), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).eval()


PREP = Preprocessing(crop_size=32, resize_size=36)


def test_each_method_on_tiny_models_writes_heatmaps_at_the_original_resolution(tmp_path):
    img = tmp_path / "wide.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(img)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for name, model, width in [("cnn", TinyCNN, 16), ("vit", TinyViT, 16)]:
        m = tiny(model, width)
        before = {k: v.clone() for k, v in m.state_dict().items()}
        for method in METHODS:
            out = tmp_path / f"{name}-{method}"
            rows = explain_paths(m, ["a", "b", "c"], PREP, [str(img), str(bad)], out, method, target=1)
            assert "error" in rows[1]  # one bad file never stops the others
            row = rows[0]
            assert row["target"]["index"] == 1 and row["target"]["class"] == "b" and 0 < row["target"]["prob"] < 1
            heat = np.load(row["heatmap"])
            assert heat.shape == (40, 70) and heat.dtype == np.float32, (name, method)
            assert heat.min() >= 0 and heat.max() == pytest.approx(1, abs=1e-3), (name, method)
            assert Image.open(row["overlay"]).size == (70, 40)
            assert row["heatmap"].endswith("00-wide-heatmap.npy") and row["overlay"].endswith("00-wide-overlay.png")
        assert not m._forward_hooks and all(not mod._forward_hooks for mod in m.modules())  # hooks removed
        assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_gradcam_layer_is_the_last_feature_map_or_the_last_blocks_input():
    x = torch.rand(1, 3, 32, 32)
    _, stage, kind = gradcam_layer(tiny(TinyCNN, 16), x)
    assert (stage, kind) == ("features[1]", "nchw")
    _, stage, kind = gradcam_layer(tiny(TinyViT, 16), x)
    assert (stage, kind) == ("blocks.0", "tokens")  # the last block's input: its class token reads every patch
    heat = attribute(tiny(TinyViT, 16), x, 0, "gradcam")
    assert heat.shape == (32, 32) and heat.max() > 0


def test_to_original_undoes_the_resize_and_center_crop():
    # 40 x 70 -> shorter side 36: 36 x 63, crop 32 at (top 2, left 16) -> original rows 2.2-37.8, cols 17.8-53.3
    heat = to_original(torch.ones(32, 32), 40, 70, PREP)
    assert heat.shape == (40, 70)
    assert heat[20, 35] == pytest.approx(1) and heat[20, 5] == 0 and heat[20, 65] == 0
    cols = np.nonzero(heat[20] > 0.5)[0]
    assert abs(cols[0] - 17.8) <= 1 and abs(cols[-1] + 1 - 53.3) <= 1  # last pixel index + 1: the edge


def test_cli_gradcam_puts_the_cats_evidence_in_its_quadrant(tmp_path, capfd):
    skimage_data = pytest.importorskip("skimage.data")
    cat = skimage_data.chelsea()
    h, w = cat.shape[:2]
    canvas = np.full((2 * h, 2 * w, 3), 128, np.uint8)
    canvas[:h, :w] = cat
    Image.fromarray(canvas).save(tmp_path / "quadrant.png")
    code = main(["explain", "--backbone", "efficientnet_lite0", str(tmp_path / "quadrant.png"), "--target", "tabby",
                 "--out", str(tmp_path / "out"), "--json"])
    assert code == 0
    result = json.loads(capfd.readouterr().out)["results"][0]
    assert result["target"]["class"] == "tabby" and result["target"]["index"] == 281
    heat = np.load(result["heatmap"])
    assert heat.shape == (2 * h, 2 * w)
    share = heat[:h, :w].sum() / heat.sum()
    assert share > 0.6, share  # a uniform map would put a quarter there


@pytest.mark.skipif(not CATS_DOGS.is_dir(), reason="needs ../shared/data/cats-dogs-dev")
def test_ig_and_occlusion_on_efficientnet_lite0_with_a_real_photo(tmp_path):
    from engine.models.build import build_classifier
    from engine.models.registry import get_spec, imagenet_classes

    photo = sorted((CATS_DOGS / "dogs").iterdir())[0]
    model = build_classifier("efficientnet_lite0", None)[0].eval()
    prep = get_spec("efficientnet_lite0").preprocessing(64)  # small input: IG and occlusion run many passes
    rows = explain_paths(model, imagenet_classes(), prep, [str(photo)], tmp_path, "ig")
    rows += explain_paths(model, imagenet_classes(), prep, [str(photo)], tmp_path / "o", "occlusion")
    size = Image.open(photo).size
    for row in rows:
        heat = np.load(row["heatmap"])
        assert heat.shape == (size[1], size[0]) and heat.max() == pytest.approx(1, abs=1e-3)
        assert (heat > 0.2).mean() < 0.9  # evidence somewhere, not everywhere
    assert rows[0]["target"] == rows[1]["target"]  # both explain the same predicted class


def test_with_tta_it_explains_the_flip_averaged_prediction_that_eval_and_predict_report():
    """A run trained with --tta reports the mean of each image's and its mirror image's logits; explain on it must
    name that prediction's class and probability, and its heatmap is the mean of both views' (issue 22)."""
    from engine.data.loaders import eval_transform
    from engine.evaluate.explain import explain_pil

    model = tiny(TinyCNN, 16)
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8))  # asymmetric: the views differ
    x = eval_transform(img, PREP).unsqueeze(0).float().div(255)
    with torch.no_grad():
        plain = model(x).softmax(1)[0]
        averaged = ((model(x) + model(x.flip(-1))) / 2).softmax(1)[0]
    assert not torch.allclose(plain, averaged, atol=1e-4), "the test image must look different mirrored"
    names = ["a", "b", "c"]
    _, without = explain_pil(model, names, PREP, img, "gradcam", tta=False)
    heat, with_tta = explain_pil(model, names, PREP, img, "gradcam", tta=True)
    assert without["prob"] == pytest.approx(float(plain[without["index"]]), abs=1e-5)
    assert with_tta["index"] == int(averaged.argmax())
    assert with_tta["prob"] == pytest.approx(float(averaged[with_tta["index"]]), abs=1e-5)
    heat_plain, _ = explain_pil(model, names, PREP, img, "gradcam", target=with_tta["index"], tta=False)
    assert not np.allclose(heat, heat_plain), "the heatmap must include the mirror view's"
