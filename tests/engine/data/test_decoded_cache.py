"""The decoded-image cache: a store's center crop is the eval input exactly; hits decode nothing; a changed
file or preprocessing is a miss; builders racing leave one whole store; readers in several DataLoader workers
see the same pixels; old stores are pruned; fine-tuning reads it (and not with --no-decoded-cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace

import pytest
import torch
from helpers.data import ROOT, make_dataset, write_image
from PIL import Image

import engine.data.decoded as decoded
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.core.paths import cache_dir
from engine.core.records import Preprocessing
from engine.core.runs import read_metrics
from engine.data.images import load_rgb
from engine.data.loaders import data_loader, eval_transform
from engine.train.augment import tensor_train_transform
from engine.train.config import TrainConfig
from engine.train.job import train

PREP = Preprocessing(32, 37, "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, (w, h) in enumerate([(48, 40), (40, 100), (64, 64), (200, 45)]):  # wide, tall, square, panorama
        path = tmp_path / f"img{i}.jpg"
        write_image(path, (40 * i, 90, 200 - 40 * i), size=64, seed=i)
        Image.open(path).resize((w, h)).save(path, quality=90)
        paths.append(str(path))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    return paths + [str(tmp_path / "broken.jpg")]


class CountingDecode:
    def __init__(self, monkeypatch):
        self.n, real = 0, decoded.decode_resized

        def counted(path, prep):
            self.n += 1
            return real(path, prep)
        monkeypatch.setattr(decoded, "decode_resized", counted)


def test_store_hit_miss_invalidation_and_exact_eval_pixels(files, monkeypatch):
    count = CountingDecode(monkeypatch)
    logs = []
    folder = decoded.build_store(files, PREP, log=logs.append)
    assert count.n == len(files) and "about" in logs[0] and " MB " in logs[0]  # the size, before building
    ds = decoded.DecodedFiles(folder, PREP)
    for i, path in enumerate(files[:-1]):  # the center crop of the stored image is the eval input itself
        x, idx, err = ds[i]
        assert err == "" and idx == i and torch.equal(x, eval_transform(load_rgb(path), PREP))
    assert ds.shapes[3].tolist() == [37, 74]  # the panorama's long side capped at 2x the short
    x, _, err = ds[len(files) - 1]
    assert "cannot decode" in err and x.shape == (3, 32, 32)
    # a hit decodes nothing; the same store for the same files
    assert decoded.build_store(files, PREP) == folder and count.n == len(files)
    # a changed file (its mtime) or another preprocessing is a miss: a new store
    os.utime(files[0], ns=(1, 1))
    assert decoded.build_store(files, PREP) != folder and count.n == 2 * len(files)
    assert decoded.build_store(files, replace(PREP, resize_size=40)) != folder
    # old stores beyond the cap are pruned, the one just built never (nor one being read: below)
    ds.close()
    monkeypatch.setenv("TLBENCH_DECODED_CACHE_MB", "0")
    newest = decoded.build_store(files, replace(PREP, resize_size=48))
    assert [p.name for p in (cache_dir() / "decoded").iterdir()] == [newest.name]


READER = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from engine.core.records import Preprocessing
from engine.data.decoded import DecodedFiles
ds = DecodedFiles(Path({folder!r}), Preprocessing(32, 44))
print("reading", ds[0][2] == "", flush=True)
sys.stdin.read()  # reads until the test closes its stdin
"""


def test_a_store_being_read_is_never_pruned(files, monkeypatch):
    """A run reads its store for hours while other runs build theirs: prune deletes an unused store beyond the
    cap, never one a dataset holds, in this process or in another; released, it goes at the next prune."""
    monkeypatch.setenv("TLBENCH_DECODED_CACHE_MB", "0")  # every store but the newest is over the cap
    first = decoded.build_store(files, PREP)
    ds = decoded.DecodedFiles(first, PREP)
    second = decoded.build_store(files, replace(PREP, resize_size=40))  # prunes, keeping its own
    assert first.exists() and torch.equal(ds[0][0], eval_transform(load_rgb(files[0]), PREP))
    ds.close()
    third = decoded.build_store(files, replace(PREP, resize_size=44))
    assert not first.exists() and not second.exists()

    reader = subprocess.Popen([sys.executable, "-c", READER.format(root=str(ROOT), folder=str(third))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert reader.stdout is not None and reader.stdout.readline().split() == ["reading", "True"]
        assert decoded.prune(third.parent, keep=third.parent / "another") == []
        assert third.exists()
    finally:
        assert reader.stdin is not None
        reader.stdin.close()
        reader.wait(60)
    assert decoded.prune(third.parent, keep=third.parent / "another") == [third]


def test_racing_builders_leave_one_whole_store_and_workers_read_the_same_pixels(files):
    found, errors = [], []

    def build():
        try:
            found.append(decoded.build_store(files, PREP))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)
    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(found)) == 1
    assert sorted(p.name for p in (cache_dir() / "decoded").iterdir()) == [found[0].name]  # no temporaries left
    torch.manual_seed(0)
    ds = decoded.DecodedFiles(found[0], PREP, tensor_train_transform("light", PREP))
    order = list(range(len(files) - 1)) * 3
    plain = decoded.DecodedFiles(found[0], PREP)
    one = [x for x, _, _ in data_loader(plain, batch_size=None, sampler=order, num_workers=0)]
    two = [x for x, _, _ in data_loader(plain, batch_size=None, sampler=order, num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(one, two)) and len(two) == len(order)
    crops = [ds[i][0] for i in range(len(files) - 1)]  # augmented crops at the training size, uint8
    assert all(c.shape == (3, 32, 32) and c.dtype == torch.uint8 for c in crops)


def test_fine_tuning_reads_the_store_and_the_opt_out_builds_none(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "d", {"red": 4, "blue": 4})
    count = CountingDecode(monkeypatch)
    base = {"dataset": str(data), "img_size": 32, "epochs": 2, "batch_size": 4, "workers": 0,
            "backbone": "resnet18", "weights": "random", "mode": "head", "precision": "fp32"}

    def run(**kw):
        final = run_job("train", lambda ctx: train(TrainConfig(**base, **kw), ctx), lambda e: None)
        assert isinstance(final, JobFinished) and final.reason == "completed", final
        return read_metrics(final.result["run_dir"])

    built = run(augment="light")
    train_images = count.n
    assert train_images > 0 and len(list((cache_dir() / "decoded").iterdir())) == 1
    found = run(augment="light")  # a later run reads the same store: nothing decoded, the very same training
    assert count.n == train_images
    # the same pixels in the same order: the same losses, up to the CPU's threaded float reductions (a run
    # under load differed in the 8th digit)
    assert [m["train_loss"] for m in found] == pytest.approx([m["train_loss"] for m in built], rel=1e-5)
    monkeypatch.setenv("TLBENCH_CACHE", str(tmp_path / "other-cache"))
    run(decoded_cache=False)
    assert count.n == train_images and not (tmp_path / "other-cache" / "decoded").exists()


def test_a_cpu_reads_the_decoded_store_in_process_unless_told_otherwise():
    """A training loader is made anew each epoch: on a CPU the store is read without worker processes (their
    start-up and the batches' trip between processes cost more than cropping a stored image); --workers wins,
    a GPU and the plain decoder keep auto_workers."""
    from engine.data.loaders import auto_workers, training_workers

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training_workers(cpu, None, decoded_cache=True) == 0
    assert training_workers(cpu, None, decoded_cache=False) == auto_workers(cpu)
    assert training_workers(cuda, None, decoded_cache=True) == auto_workers(cuda)
    assert training_workers(cpu, 3, decoded_cache=True) == 3
