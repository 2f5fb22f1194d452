"""The typed run and preprocessing records read and write the very JSON the run files hold."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.data import make_dataset

from engine.core.checkpoints import load_checkpoint
from engine.core.errors import RunError
from engine.core.files import atomic_write_json
from engine.core.jobs import run_job
from engine.core.records import Preprocessing, RunRecord
from engine.core.runs import load_config
from engine.features.cache import cache_key
from engine.models.registry import get_spec
from engine.serve.export import metadata
from engine.train.config import TrainConfig
from engine.train.job import train

# What tlbench wrote before the records existed (a run from the first release: no precision, no fingerprint,
# no resumed list, no kind), copied from such a config.json.
OLD_CONFIG = {
    "dataset": "/data/pets", "backbone": "resnet50", "mode": "probe", "epochs": 5, "batch_size": 64,
    "lr": 0.001, "img_size": 224, "seed": 0, "val_fraction": 0.2, "classes": ["cat", "dog"],
    "weights_identity": "ResNet50_Weights.IMAGENET1K_V2",
    "preprocessing": {"crop_size": 224, "resize_size": 232, "interpolation": "bilinear",
                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "feature_dim": 2048, "created": "2026-01-01T12:00:00+0000",
}


def file_bytes(tmp_path: Path, obj) -> bytes:
    """`obj` as tlbench writes a run's JSON file."""
    path = tmp_path / "written.json"
    atomic_write_json(path, obj)
    return path.read_bytes()


def test_a_runs_files_round_trip_byte_for_byte(tmp_path):
    data = make_dataset(tmp_path / "colours", {"red": 4, "blue": 4})
    cfg = TrainConfig(dataset=str(data), img_size=32, epochs=2, lr=1e-2, workers=0, runs_dir=str(tmp_path / "runs"))
    run_dir = Path(run_job("train", lambda ctx: train(cfg, ctx)).result["run_dir"])
    written = (run_dir / "config.json").read_bytes()
    record = load_config(run_dir)
    assert record.classes == ("blue", "red") and record.preprocessing.crop_size == 32
    assert file_bytes(tmp_path, record.to_dict()) == written
    raw = json.loads(written)
    # the checkpoints carry the same record
    assert load_checkpoint(run_dir / "best.pt")["config"] == record.to_dict() == raw
    # the exported metadata is what it was when it was built from the dict
    before = {"classes": raw["classes"], "preprocessing": raw["preprocessing"], "backbone": raw["backbone"],
              "mode": raw["mode"], "run": run_dir.name, "tta": False,  # the export says whether it flip-averages
              # an export computes in fp32; the precision the run recorded rides along
              "precision": "fp32", "run_precision": raw["precision_resolved"],
              "input": "uint8 RGB images [N, 3, H, W], any size", "output": "class probabilities [N, C]"}
    assert json.dumps(metadata(record, run_dir)) == json.dumps(before)


def test_preprocessing_writes_the_keys_in_the_order_tlbench_always_wrote_them():
    prep = get_spec("efficientnet_lite0").preprocessing(32)
    assert json.dumps(prep.to_dict()) == (
        '{"crop_size": 32, "resize_size": 37, "interpolation": "bilinear", '
        '"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}')
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    # the feature cache's key holds that same dict, so caches written before the record still hit
    key = cache_key("efficientnet_lite0", "some-weights", prep)
    assert key["preprocessing"] == prep.to_dict() and key["image_size"] == 32
    assert list(key["preprocessing"]) == ["crop_size", "resize_size", "interpolation", "mean", "std"]


def test_an_old_config_without_the_newer_keys_loads_and_writes_back_unchanged(tmp_path):
    record = RunRecord.from_dict(OLD_CONFIG)
    assert record.precision is None and record.resumed == () and record.dataset_fingerprint is None
    assert record.weights is None and record.seed == 0 and record.mode == "probe"
    assert record.preprocessing.resize_size == 232 and record.preprocessing.resize_mode == "bilinear"
    assert file_bytes(tmp_path, record.to_dict()) == file_bytes(tmp_path, OLD_CONFIG)
    # a preprocessing recorded without interpolation, mean and std means torchvision's defaults
    bare = Preprocessing.from_dict({"crop_size": 64, "resize_size": 73})
    assert bare.interpolation == "bilinear" and bare.mean == (0.485, 0.456, 0.406)


def test_unknown_keys_survive_a_round_trip(tmp_path):
    newer = {**OLD_CONFIG, "explanations": {"method": "gradcam"},
             "preprocessing": {**OLD_CONFIG["preprocessing"], "crop_pct": 0.875}}
    record = RunRecord.from_dict(newer)
    assert record.get("explanations") == {"method": "gradcam"}
    assert record.preprocessing.extra == {"crop_pct": 0.875}
    assert file_bytes(tmp_path, record.to_dict()) == file_bytes(tmp_path, newer)
    # a changed field is written where the file had it, the other keys kept
    moved = replace(record, dataset="/elsewhere/pets").to_dict()
    assert list(moved) == list(newer) and moved["dataset"] == "/elsewhere/pets"
    assert moved["explanations"] == {"method": "gradcam"} and moved["preprocessing"]["crop_pct"] == 0.875


def test_values_written_as_ints_stay_ints(tmp_path):
    as_ints = {**OLD_CONFIG, "val_fraction": 0, "preprocessing": {**OLD_CONFIG["preprocessing"], "mean": [0, 0, 0]}}
    assert file_bytes(tmp_path, RunRecord.from_dict(as_ints).to_dict()) == file_bytes(tmp_path, as_ints)


@pytest.mark.parametrize("key", ["classes", "backbone", "dataset", "preprocessing"])
def test_a_config_without_a_key_every_run_has_is_refused_by_name(tmp_path, key):
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in OLD_CONFIG.items() if k != key}))
    with pytest.raises(RunError, match=f"config.json has no {key}"):
        load_config(tmp_path)


def test_a_damaged_preprocessing_is_refused_with_the_bad_value():
    with pytest.raises(RunError, match="no resize_size"):
        Preprocessing.from_dict({"crop_size": 32})
    with pytest.raises(RunError, match="mean is 'grey'"):
        Preprocessing.from_dict({"crop_size": 32, "resize_size": 37, "mean": "grey"})
