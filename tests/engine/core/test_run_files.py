"""Run files are shared: every file a run or a cache writes gets the permissions open() would give it
(0o666 minus the umask), so with umask 022 or 002 teammates can read `--runs-dir /shared/runs`; the writes
stay atomic (temporary file, fsync, os.replace)."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from helpers.data import make_dataset

from engine.core import checkpoints, runs
from engine.core.files import atomic_write_bytes


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def open_mode(folder: Path) -> int:
    """What open() gives a new file here, under the current umask (and any default ACL of the folder)."""
    ref = folder / "made-by-open"
    with open(ref, "w"):
        pass
    try:
        return mode(ref)
    finally:
        ref.unlink()


def test_every_kind_of_run_file_is_created_as_open_would(tmp_path, umask):
    from engine.adversarial.render import save_png

    expected = open_mode(tmp_path)
    assert expected == 0o666 & ~umask  # the premise: no default ACL in the test's folder
    runs.save_config(tmp_path, {"seed": 0})
    runs.append_metrics(tmp_path, {"epoch": 1})
    runs.append_metrics(tmp_path, {"epoch": 2})  # rewritten: still the same mode
    runs.update_report(tmp_path, {"accuracy": 0.5})
    checkpoints.save_checkpoint(tmp_path / "last.pt", {"epoch": 1, "model": {"w": torch.zeros(2)}})
    save_png(tmp_path / "adversarial.png", torch.zeros(3, 4, 4))
    atomic_write_bytes(tmp_path / "features.pt", b"cache")
    runs.atomic_write_text(tmp_path / "scan.json", "{}")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["adversarial.png", "config.json", "features.pt", "last.pt", "metrics.jsonl", "report.json",
                     "scan.json"]  # and no temporary file left behind
    assert {name: oct(mode(tmp_path / name)) for name in files} == {name: oct(expected) for name in files}


def test_a_training_run_and_its_caches_are_readable_as_the_umask_allows(tmp_path, umask, capfd):
    """The real writers end to end: train (probe: config, metrics, checkpoints, summary, report, plots, the
    feature and scan caches) and eval (report.json rewritten, plots)."""
    from tui.main import main

    cache = Path(os.environ["TLBENCH_CACHE"])
    shutil.rmtree(cache)  # conftest's copy of the demo's scan was made before this test's umask: only what the job writes
    data = make_dataset(tmp_path / "colours", {"red": 4, "blue": 4})
    assert main(["train", str(data), "--img-size", "32", "--epochs", "2", "--json"]) == 0
    run_dir = Path(json.loads(capfd.readouterr().out)["run_dir"])
    assert main(["eval", str(run_dir), "--json"]) == 0
    files = [p for top in (run_dir, cache) for p in top.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".json", ".jsonl", ".pt", ".png"} <= kinds, kinds
    assert any(cache in p.parents and p.suffix == ".pt" for p in files)  # the feature cache
    wrong = {str(p): oct(mode(p)) for p in files if mode(p) != 0o666 & ~umask}
    assert not wrong, f"expected {oct(0o666 & ~umask)}"
    folders = [run_dir, *(p for top in (run_dir, cache) for p in top.rglob("*") if p.is_dir())]
    assert all(mode(p) == 0o777 & ~umask for p in folders), {str(p): oct(mode(p)) for p in folders}


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "config.json"
    runs.atomic_write_json(path, {"v": 1})
    path.chmod(0o640)  # the owner chose who may read it
    runs.atomic_write_json(path, {"v": 2})
    assert mode(path) == 0o640 and json.loads(path.read_text()) == {"v": 2}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    runs.atomic_write_json(path, {"v": 1})

    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs.os, "replace", no_replace)
    with pytest.raises(OSError):
        runs.atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
