"""Issue 6, faults and security: killed writers, injected errors, and no shell or eval on user input."""

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from helpers.data import ROOT

from engine.core.checkpoints import load_checkpoint
from engine.core.errors import explain_unexpected


def _write_forever(path, ready, tensors):
    """Rewrite a ~8 MB checkpoint in a loop, so a kill often lands mid-write. The tensors were made before
    the fork: tensor maths in a forked child can deadlock in the OpenMP runtime, serialisation does not."""
    from engine.core.checkpoints import save_checkpoint

    i = 0
    while True:
        i += 1
        save_checkpoint(path, {"epoch": i, "model": {"w": tensors[i % 2]}})
        if i >= 2:  # from here on every kill lands while an existing checkpoint is being replaced
            ready.set()


def test_sigkill_while_checkpoints_are_written_never_leaves_a_broken_file(tmp_path):
    """20 tries: kill -9 at a random moment of a process rewriting a checkpoint; the file always loads."""
    import multiprocessing
    import random

    ctx = multiprocessing.get_context("fork")  # forked from this process: no second torch import
    rng = random.Random(0)
    path = tmp_path / "last.pt"
    tensors = [torch.zeros(2_000_000), torch.ones(2_000_000)]
    epochs = []
    for _ in range(20):
        ready = ctx.Event()
        proc = ctx.Process(target=_write_forever, args=(path, ready, tensors))
        proc.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        ckpt = load_checkpoint(path)  # never half-written
        w = ckpt["model"]["w"]
        assert w.shape == (2_000_000,) and torch.all(w == ckpt["epoch"] % 2)
        epochs.append(ckpt["epoch"])
    assert min(epochs) >= 2  # each kill landed while a checkpoint was being replaced, not first written
    from engine.core.checkpoints import save_checkpoint

    save_checkpoint(path, {"epoch": 0})  # the next save clears temporary files the kills left
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_out_of_memory_and_disk_full_messages_say_what_to_do():
    title, msg = explain_unexpected(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert title == "Out of memory" and "--batch-size" in msg and "--img-size" in msg
    title, msg = explain_unexpected(OSError(28, "No space left on device"))
    assert title == "Disk full" and "previous checkpoint is intact" in msg


def test_injected_cuda_oom_during_training_fails_the_job_with_the_fix(tiny_dataset, monkeypatch):
    from engine.core.events import JobFailed
    from engine.core.jobs import run_job
    from engine.models.classifier import Classifier
    from engine.train.config import TrainConfig
    from engine.train.job import train

    def oom(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Classifier, "features", oom)
    final = run_job("train", lambda ctx: train(TrainConfig(str(tiny_dataset), img_size=32, epochs=1), ctx))
    assert isinstance(final, JobFailed) and isinstance(final.error, torch.OutOfMemoryError)
    assert "--batch-size" in explain_unexpected(final.error)[1]


SOURCE_DIRS = ("engine", "tui", "bench", "data")
FORBIDDEN = [
    (re.compile(r"shell\s*=\s*True"), "shell=True"),
    (re.compile(r"(?<![\w.])eval\s*\("), "eval("),
    (re.compile(r"(?<![\w.])exec\s*\("), "exec("),
    (re.compile(r"os\.system\s*\("), "os.system("),
    (re.compile(r"weights_only\s*=\s*False"), "weights_only=False"),
]


@pytest.mark.parametrize("pattern, name", FORBIDDEN, ids=[n for _, n in FORBIDDEN])
def test_no_shell_eval_or_unsafe_load_in_the_source(pattern, name):
    hits = []
    for folder in SOURCE_DIRS:
        for path in Path(ROOT, folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if pattern.search(code):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, f"{name} found:\n" + "\n".join(hits)


def test_the_grep_would_catch_a_violation(tmp_path):
    """The pattern test above is only worth something if the patterns match real code."""
    samples = {"shell=True": "subprocess.run(cmd, shell=True)", "eval(": "x = eval(text)",
               "exec(": "exec(code)", "os.system(": "os.system('ls')", "weights_only=False": "torch.load(p, weights_only=False)"}
    for pattern, name in FORBIDDEN:
        assert pattern.search(samples[name]), name
    assert not FORBIDDEN[1][0].search("model.eval()")  # a method named eval is not eval()


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tiny_dataset, monkeypatch):
    """The disk fills up while epoch 2's checkpoint is written: a clear error, epoch 1's last.pt intact."""
    import errno

    import engine.core.runs as runs
    from engine.core.events import JobFailed
    from engine.core.jobs import run_job
    from engine.train.config import TrainConfig
    from engine.train.job import train

    last_writes = []
    real_fsync = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".last.pt." in name and name.endswith(".tmp"):
            last_writes.append(name)
            if len(last_writes) == 2:  # epoch 2's last.pt: the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(runs.os, "fsync", fsync)

    cfg = TrainConfig(str(tiny_dataset), mode="head", epochs=3, img_size=32, batch_size=8, augment="none")
    final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFailed) and final.error.errno == errno.ENOSPC
    title, message = explain_unexpected(final.error)
    assert title == "Disk full" and "previous checkpoint is intact" in message
    run_dir = next(Path(os.environ["TLBENCH_RUNS"]).iterdir())
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1  # the file from before the failure
    assert not list(run_dir.glob(".*.tmp"))  # the failed write cleaned up after itself


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "..", "a/../../b", "tabby cat", "猫", ""])
def test_names_from_user_text_cannot_escape_their_folder(tmp_path, name):
    """Class names and labels end up in file names (dream PNGs, attack folders, run directories)."""
    from PIL import Image

    from engine.core.runs import create_run_dir, safe_name
    from tui.dream.screen import dream_file_stem, save_png_new

    folder = tmp_path / "run" / "dreams"
    path = save_png_new(Image.new("RGB", (2, 2)), folder, dream_file_stem(name, 5))
    assert path.parent == folder and path.resolve().is_relative_to(folder.resolve())
    assert "/" not in safe_name(name) and safe_name(name) not in ("", ".", "..")
    run = create_run_dir(tmp_path / "runs", name, name, "probe")
    assert run.parent == tmp_path / "runs"


def _loader_worker_exit_codes() -> list:
    from engine.data.loaders import data_loader

    it = iter(data_loader(list(range(8)), batch_size=2, num_workers=2))
    assert [int(b.sum()) for b in it] == [1, 5, 9, 13]
    workers = list(it._workers)
    it._shutdown_workers()
    return [w.exitcode for w in workers]


def test_loader_workers_forked_from_a_pool_thread_exit_cleanly():
    """The workbench runs jobs on the event loop's executor threads. A DataLoader worker forked there inherited
    concurrent.futures' exit hook, tried to join its own thread and exited with code 1 after its work; in CI
    that surfaced through a SIGCHLD handler as "DataLoader worker exited unexpectedly"."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(_loader_worker_exit_codes).result() == [0, 0]


def test_every_engine_loader_goes_through_data_loader():
    """So every loader gets the worker set-up above; a new bare DataLoader( would miss it."""
    bare = [f"{p.relative_to(ROOT)}:{n}" for p in Path(ROOT, "engine").rglob("*.py")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"(?<![\w.])DataLoader\(", line.split("#", 1)[0]) and p.relative_to(ROOT).as_posix() != "engine/data/loaders.py"]
    assert not bare, bare
