"""Shared fixtures: every test runs offline, with its own caches and runs directory."""

from __future__ import annotations

import inspect
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
CATS_DOGS = SHARED_DATA / "cats-dogs-dev"
DEMO = ROOT / "data" / "demo" / "digits"


# ------------------------------------------------------------------------------ tiers
# Every test gets one tier marker, from what it does (read off its code and its fixtures' code, so a new test
# is tiered without anyone remembering to): `system` spawns processes (the CLI as a subprocess, torchrun, a
# wheel's venv, a pty, a browser) or compiles; `pilot` drives the workbench by keys; `unit` is the rest.
# `pytest -m "not system"` is the loop a contributor waits for (docs/development.md).
SPAWNS = ("subprocess.", "Popen(", "torch.distributed.run", "pty.fork", "pty.openpty", "chromium", "tmux ")
SYSTEM_FILES = {"test_packaging.py", "test_compile.py"}


def _spawns(fn, depth: int = 2) -> bool:
    """Whether `fn`, or a function of its own module it calls (to `depth`), starts a process."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return False
    if any(word in source for word in SPAWNS):
        return True
    module = inspect.getmodule(fn)
    code = getattr(fn, "__code__", None)
    if depth == 0 or module is None or code is None:
        return False
    for name in code.co_names:
        called = getattr(module, name, None)
        if inspect.isfunction(called) and called.__module__ == module.__name__ and called is not fn \
                and _spawns(called, depth - 1):
            return True
    return False


def _tier(item: pytest.Item) -> str:
    path = Path(str(item.fspath))
    if item.get_closest_marker("system") or path.name in SYSTEM_FILES:
        return "system"
    fn = getattr(item, "function", None)
    if fn is not None and _spawns(fn):
        return "system"
    for defs in item._fixtureinfo.name2fixturedefs.values():
        if any(_spawns(d.func) for d in defs if "tests" in Path(inspect.getfile(d.func)).parts):
            return "system"
    return "pilot" if "tui" in path.relative_to(ROOT / "tests").parts else "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(_tier(item))


def _isolate(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    monkeypatch.setenv("TLBENCH_OFFLINE", "1")
    monkeypatch.setenv("TLBENCH_CACHE", str(base / "cache"))
    monkeypatch.setenv("TLBENCH_RUNS", str(base / "runs"))
    monkeypatch.setenv("TLBENCH_DATA", str(base / "data"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    # the Hugging Face hub cache (timm weights) too, and no network for it either
    monkeypatch.setenv("HF_HOME", str(base / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(base / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TLBENCH_STATE", str(base / "state.json"))  # never the user's ~/.config/tlbench
    # `--precision auto` resolves to fp32 on every machine: no test depends on what the host's CPU or GPU would
    # choose (bf16 on an AVX-512 BF16 host, fp32 on an AVX2 one). The machine-dependent choice itself is tested
    # against simulated profiles (tests/engine/runtime/test_precision_auto.py), which unset this.
    monkeypatch.setenv("TLBENCH_PRECISION_AUTO", "fp32")
    monkeypatch.delenv("TLBENCH_PRECISION_MEASURE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


@pytest.fixture(scope="session", autouse=True)
def isolated_session_env(tmp_path_factory):
    """The same isolation for module- and session-scoped fixtures: pytest sets them up before any test's own
    (function-scoped) environment, so without this their training runs went to ./runs in the checkout and
    their caches to ~/.cache/tlbench."""
    monkeypatch = pytest.MonkeyPatch()
    _isolate(monkeypatch, tmp_path_factory.mktemp("session-env"))
    yield
    monkeypatch.undo()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No network, no shared caches: each test gets fresh cache, runs, torch and Hugging Face hub directories and workbench state."""
    base = tmp_path_factory.mktemp("env")
    _isolate(monkeypatch, base)
    yield base
    _forget_dataloader_sigchld_handler()


def _forget_dataloader_sigchld_handler() -> None:
    """The first DataLoader with workers that runs in the main thread installs a SIGCHLD handler and never
    removes it. In one pytest process it then outlives its test: a worker of a later test's job (the workbench
    runs jobs on threads, where torch installs no handler) that exits with an error made it raise inside that
    test's event loop, failing every later test that forks (seen in CI with workers that exited with code 1,
    since fixed in engine.data.loaders.forked_worker_init). Each test starts with the default again, as a
    fresh process would (the app itself never runs a loader in its main thread)."""
    import signal
    import sys
    import threading

    handling = sys.modules.get("torch.utils.data._utils.signal_handling")
    if handling is None or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    handling._SIGCHLD_handler_set = False  # the next main-thread loader installs it afresh


def write_image(path: Path, rgb: tuple[int, int, int], size: int = 32, noise: int = 30, seed: int = 0,
                fmt: str | None = None) -> Path:
    """A solid-colour image with noise: classes of different colours are easy to tell apart."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb, dtype=np.int16) + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), "RGB").save(path, format=fmt)
    return path


COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200), "yellow": (220, 210, 40)}


def make_dataset(root: Path, classes: dict[str, int] | None = None, size: int = 32, ext: str = ".png") -> Path:
    """root/<class>/<class>_<i><ext>, one colour per class."""
    classes = classes or {"red": 12, "blue": 12}
    for c, n in classes.items():
        for i in range(n):
            write_image(root / c / f"{c}_{i}{ext}", COLOURS.get(c, (128, 128, 128)), size, seed=i + 100 * len(c))
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "colours", {"red": 12, "blue": 12, "green": 12})


def tree_hash(root: Path) -> str:
    """Hash of every path, size, mode and content under root (links not followed): proves nothing changed."""
    import hashlib

    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, root)}|{st.st_size}|{st.st_mode}|{st.st_mtime_ns}".encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode) and os.access(p, os.R_OK):  # never open a FIFO
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


# The 37 Oxford-IIIT Pets breeds as the dataset names them: long names, mixed case, the sizes the workbench
# must show readably at 80x24.
OXFORD_PETS_CLASSES = [
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal", "Birman",
    "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
    "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
    "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll",
    "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
    "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
]


def make_pets_like(root: Path, per_class: int = 4, size: int = 32) -> Path:
    """root/<breed>/<breed>_<i>.jpg for the 37 Oxford breeds: one hue per class (easy to learn), small files."""
    import colorsys

    for k, name in enumerate(OXFORD_PETS_CLASSES):
        r, g, b = colorsys.hsv_to_rgb(k / len(OXFORD_PETS_CLASSES), 0.8, 0.85)
        for i in range(per_class):
            write_image(root / name / f"{name}_{i + 1}.jpg", (int(r * 255), int(g * 255), int(b * 255)), size,
                        noise=20, seed=1000 * k + i)
    return root
