"""Issue 24 item 6: what each folder under the runs root is (a training run, an lr-find, a comparison, an
audit), and run folders named after the dataset even when its folder is only called `images`."""

from __future__ import annotations

import json

import pytest
from conftest import make_dataset

from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.core.runs import dataset_label, list_run_folders, list_runs, run_kind
from engine.train.config import TrainConfig
from engine.train.job import train


@pytest.mark.parametrize("path, want", [
    ("/data/oxford-iiit-pet/images", "oxford-iiit-pet-images"),
    ("/data/cats_dogs/train", "cats_dogs-train"),
    ("/data/pets/Data", "pets-Data"),
    ("/data/oxford-pets", "oxford-pets"),
    ("images", "images"),  # no parent to name: the folder's own name
])
def test_a_generic_folder_name_is_prefixed_with_its_parent(path, want):
    assert dataset_label(path) == want


def test_a_training_run_on_an_images_folder_is_named_after_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TLBENCH_RUNS", str(tmp_path / "runs"))
    data = make_dataset(tmp_path / "oxford-iiit-pet" / "images", {"red": 5, "blue": 5})
    done = run_job("train", lambda ctx: train(TrainConfig(dataset=str(data), img_size=32, epochs=2), ctx))
    assert isinstance(done, JobFinished) and done.reason == "completed", done
    name = done.result["run_dir"].rsplit("/", 1)[-1]
    assert "-oxford-iiit-pet-images-" in name and name.endswith("-probe"), name


def test_each_folder_says_what_job_wrote_it(tmp_path):
    root = tmp_path / "runs"
    folders = {}
    for name, files in {"20260101-000001-d-resnet18-probe": {"config.json": {"mode": "probe"}},
                        "20260101-000002-d-resnet18-full": {"config.json": {"kind": "train", "mode": "full"}},
                        "20260101-000003-d-resnet18-lr-find": {"config.json": {"kind": "lr-find"},
                                                              "lr_find.json": {"suggested_lr": 0.01}},
                        "20260101-000004-d-compare": {"compare.json": {"results": []}},
                        "20260101-000005-d-resnet18-audit": {"audit.json": {"backbone": "resnet18"}},
                        "20260101-000006-stray": {"notes.txt": "not a job's"}}.items():
        folders[name] = folder = root / name
        folder.mkdir(parents=True)
        for file, content in files.items():
            (folder / file).write_text(json.dumps(content) if isinstance(content, dict) else content)
    listed = list_run_folders(root)
    assert [p.name for p in listed] == sorted((n for n in folders if "stray" not in n), reverse=True)
    kinds = {p.name.split("-", 3)[-1]: run_kind(p, json.loads((p / "config.json").read_text())
                                                if (p / "config.json").exists() else None) for p in listed}
    assert kinds == {"resnet18-probe": "train", "resnet18-full": "train", "resnet18-lr-find": "lr-find",
                     "compare": "compare", "resnet18-audit": "audit"}
    assert len(list_runs(root)) == 3  # the engine's own list (reports, the newest model): config.json runs only
