"""Exports embed preprocessing and class names, and predict the same classes as the run on the same images;
ONNX without its optional packages is a clear message."""

import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch
from conftest import COLOURS, ROOT, write_image
from PIL import Image

from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.export import export_run, load_exported
from engine.jobs import run_job
from engine.predict import load_run_model, predict_paths
from engine.training import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # low-noise images (resampling noise differently must not decide a class), plus odd sizes and shapes,
    # so the embedded resize and crop really work
    root = tmp_path_factory.mktemp("ex") / "colours"
    for c, rgb in COLOURS.items():
        if c != "yellow":
            for i in range(8):
                write_image(root / c / f"{c}_{i}.png", rgb, size=40, noise=6, seed=i)
    for i, (w, h) in enumerate([(90, 50), (45, 120), (64, 64)]):
        Image.new("RGB", (w, h), (40, 170 + i * 10, 60)).save(root / "green" / f"odd_{i}.png")
    cfg = TrainConfig(dataset=str(root), img_size=64, epochs=40, lr=5e-2, mode="probe")
    final = run_job("train", lambda ctx: train(cfg, ctx))
    paths = sorted(str(p) for p in root.rglob("*.png"))
    return final.result["run_dir"], paths


@pytest.fixture(scope="module")
def exports(trained):
    """Each format exported once for the module (an ONNX export takes seconds)."""
    run_dir, _ = trained
    return {fmt: export_run(run_dir, fmt) for fmt in ("torchscript", "onnx")}


def as_uint8(path):
    with Image.open(path) as img:
        return torch.from_numpy(__import__("numpy").asarray(img.convert("RGB")).copy()).permute(2, 0, 1)[None]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_predicts_what_the_run_predicts(trained, exports, fmt):
    run_dir, paths = trained
    result = exports[fmt]
    assert result["max_abs_diff"] < 1e-4
    predict, classes = load_exported(result["path"])
    model, record = load_run_model(run_dir)
    assert classes == record["classes"] == ["blue", "green", "red"]
    runs = predict_paths(model, record, paths, top_k=2)
    exported = [predict(as_uint8(p))[0] for p in paths]
    # the export resamples in float inside the model, the run with PIL: probabilities agree closely, and
    # the predicted class wherever the run's decision is not a coin toss
    clear = [i for i, r in enumerate(runs) if r["predictions"][0]["prob"] - r["predictions"][1]["prob"] > 0.05]
    assert len(clear) >= 0.8 * len(paths)
    assert [classes[int(exported[i].argmax())] for i in clear] == [runs[i]["predictions"][0]["class"] for i in clear]
    for r, probs in zip(runs, exported):
        top = r["predictions"][0]
        assert float(probs[top["index"]]) == pytest.approx(top["prob"], abs=0.1)
    probs = predict(as_uint8(paths[0]))
    assert probs.shape == (1, 3) and float(probs.sum()) == pytest.approx(1.0, abs=1e-4)


def test_torchscript_archive_carries_the_preprocessing(exports):
    path = exports["torchscript"]["path"]
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("extra/tlbench.json"))
        meta = json.loads(z.read(name))
    assert meta["preprocessing"]["crop_size"] == 64 and meta["classes"] == ["blue", "green", "red"]


def test_onnx_metadata_names_classes_and_preprocessing(exports):
    import onnx

    path = exports["onnx"]["path"]
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(props["classes"]) == ["blue", "green", "red"]
    assert json.loads(props["preprocessing"])["resize_size"] >= 32


def test_onnx_missing_is_a_clear_message(trained, monkeypatch):
    run_dir, _ = trained
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'tlbench\[onnx\]'.*--format torchscript"):
        export_run(run_dir, "onnx")


def test_export_cli_json(trained, tmp_path):
    run_dir, _ = trained
    target = tmp_path / "m.pt"
    out = subprocess.run([sys.executable, "-m", "tui.main", "export", run_dir, "--output", str(target), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["path"] == str(target) and target.exists()
