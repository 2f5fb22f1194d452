"""Shared fixtures: every test runs offline, with its own caches and runs directory."""

from __future__ import annotations

import functools
import gc
import inspect
import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers.data import DEMO, ROOT, make_dataset, make_pets_like

# PYTHONDONTWRITEBYTECODE=1 (set on some machines: this project's CI and dev machines among them) made every
# pytest process rewrite the asserts of all ~150 test modules again, each run: 3 s of CPU in each of the three
# workers before the first test. The suite keeps its compiled modules in __pycache__ (ignored by git), as
# Python does by default.
sys.dont_write_bytecode = False

# ------------------------------------------------------------------------------ tiers
# Every test gets one tier marker, from what it does (read off its code and its fixtures' code, so a new test
# is tiered without anyone remembering to): `system` spawns processes (the CLI as a subprocess, torchrun, a
# wheel's venv, a pty, a browser), compiles (torch.export, ONNX), holds an accuracy bar on real photos (`slow`)
# or chains the features end to end (the scenario files), or is one more case of the every-backbone sweep
# (`sweep`: the fast tier keeps the first architecture of each builder); `pilot` drives the workbench by keys;
# `unit` is the rest. `pytest -m "not system"` is the loop a contributor waits for (docs/development.md).
SPAWNS = ("subprocess.", "Popen(", "torch.distributed.run", "pty.fork", "pty.openpty", "chromium", "tmux ",
          # compiling: torch.export traces the model and ONNX converts the program (seconds each)
          "torch.export", "torch.compile", "onnx", "pt2", "export_run(",
          # a forked process (killed mid-write)
          ".Process(", "os.fork(")
SYSTEM_FILES = {"test_packaging.py", "test_compile.py", "test_workflow.py", "test_tui_workflow.py",
                "test_report_browser.py"}


@functools.cache
def _spawns(fn, depth: int = 2) -> bool:
    """Whether `fn`, or a function of its own module it calls (to `depth`), starts a process. Cached: the same
    fixtures come back for hundreds of tests, and reading a function's source costs ~1 ms."""
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
    if any(item.get_closest_marker(m) for m in ("system", "slow", "sweep")) or path.name in SYSTEM_FILES:
        return "system"
    fn = getattr(item, "function", None)
    if fn is not None and _spawns(fn):
        return "system"
    for defs in item._fixtureinfo.name2fixturedefs.values():
        if any(_spawns(d.func) for d in defs if "tests" in Path(inspect.getfile(d.func)).parts):
            return "system"
    return "pilot" if "tui" in path.relative_to(ROOT / "tests").parts else "unit"


def pytest_configure(config):
    # Under pytest-xdist (`-n 2`) each worker is a process with a share of the cores; torch's default, one thread
    # per core in every worker, would oversubscribe them and make both slower than one process.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))
    _share_stylesheet_parses()
    # Python's cyclic collector sweeps every live object once per ~70,000 allocations by default; a workbench
    # test allocates millions (Textual widgets, styles, strips) beside torch's and Textual's own, and those full
    # sweeps were a seventh of the pilot tests' time (0.4 s each). Fewer, later sweeps: the same garbage is
    # collected, no test relies on when (none uses gc or weakref).
    gc.set_threshold(10_000, 20, 20)


def _share_stylesheet_parses() -> None:
    """Parse each piece of Textual CSS once per test process, not once per app.

    Textual keeps its parsed rules per Stylesheet, so every app that a test starts tokenizes the workbench's
    stylesheet and every widget's DEFAULT_CSS again. That was a fifth of a short pilot test's CPU, and hundreds
    of apps start in one process. The parse is a pure function of the CSS, where it was read from and the theme's
    variables, so the key holds all three. A parse that raises is not kept, and a kept parse that has errors
    still raises when the stylesheet checks them, as it would if it were new. Only the tests do this: the
    workbench starts one app per process."""
    from textual.css.stylesheet import Stylesheet

    parse_rules = Stylesheet._parse_rules
    parsed: dict[tuple, list] = {}

    def shared(self, css, read_from, is_default_rules=False, tie_breaker=0, scope=""):
        variables = self._variables  # replaced, never changed in place (Stylesheet.set_variables)
        memo = self.__dict__.get("_tlbench_variables")
        if memo is None or memo[0] is not variables:
            memo = self._tlbench_variables = (variables, tuple(sorted(variables.items())))
        key = (css, read_from, is_default_rules, tie_breaker, scope, memo[1])
        if key not in parsed:
            parsed[key] = parse_rules(self, css, read_from, is_default_rules, tie_breaker, scope)
        return list(parsed[key])

    Stylesheet._parse_rules = shared  # type: ignore[method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # After the last test a worker sweeps its heap five times over (pytest's check for unraisable exceptions)
    # and the interpreter's shutdown sweeps it again: seconds per worker with PyTorch and hundreds of apps'
    # leftovers, after the last test. Frozen, the sweeps skip what every test has left behind.
    gc.freeze()


def _module_fixture_group(item: pytest.Item) -> str | None:
    """The test module's name when the test uses a module-scoped fixture of its own module (a trained run, its
    exports): under `--dist loadgroup` such a module's tests go to one worker, so the fixture is built once,
    not once per worker (the export module's fixture is ~40 s of CPU)."""
    module = getattr(item, "module", None)
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for d in defs:
            if d.scope in ("module", "class") and module is not None and inspect.getmodule(d.func) is module:
                return module.__name__
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(_tier(item))
        group = _module_fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    # the longest first: under pytest-xdist a minute-long test started last keeps one worker busy after the rest
    # are done. The accuracy bars on real photos, the other system tests, the modules that share a trained run
    # (one worker takes a whole group), the workbench's pilots (seconds each, and slower still while another
    # thread of theirs works), the training tests (seconds each), then the engine's other unit tests, mostly a
    # fraction of a second, to fill the end.
    def rank(item: pytest.Item) -> int:
        for rank, marker in enumerate(("slow", "system", "xdist_group", "pilot")):
            if item.get_closest_marker(marker):
                return rank
        return 4 if "train" in item.path.relative_to(ROOT / "tests").parts else 5

    items.sort(key=rank)


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
    # pictures as half blocks whatever terminal runs the tests (kitty, a Sixel xterm): the snapshots stay the same;
    # tests/tui/widgets/test_widgets_pictures.py forces the other protocols
    monkeypatch.setenv("TLBENCH_IMAGES", "halfblock")


@pytest.fixture(scope="session", autouse=True)
def isolated_session_env(tmp_path_factory):
    """The same isolation for module- and session-scoped fixtures: pytest sets them up before any test's own
    (function-scoped) environment, so without this their training runs went to ./runs in the checkout and
    their caches to ~/.cache/tlbench."""
    monkeypatch = pytest.MonkeyPatch()
    _isolate(monkeypatch, tmp_path_factory.mktemp("session-env"))
    yield
    monkeypatch.undo()


_demo_scan: list[Path] = []


def _demo_scan_cache(tmp_path_factory) -> Path:
    """The bundled demo's scan cache, made once per process. Checking its 1,797 PNGs took a third of the
    workbench tests' CPU when every test scanned it cold; the demo never changes during a session, so each
    test starts with its scan cached, as a user's second start does. The cold scan keeps its own tests
    (tests/engine/data/test_datasets.py) and runs in every test on a generated dataset."""
    if not _demo_scan:
        from engine.data.scan import scan_dataset

        base = tmp_path_factory.mktemp("demo-scan")
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv("TLBENCH_CACHE", str(base))
            scan_dataset(DEMO)
        _demo_scan.extend((base / "scan").glob("*.json"))
    return _demo_scan[0]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No network, no shared caches: each test gets fresh cache, runs, torch and Hugging Face hub directories and
    workbench state (the demo's scan cache, copied in: _demo_scan_cache)."""
    base = tmp_path_factory.mktemp("env")
    _isolate(monkeypatch, base)
    demo = _demo_scan_cache(tmp_path_factory)
    (base / "cache" / "scan").mkdir(parents=True)
    shutil.copyfile(demo, base / "cache" / "scan" / demo.name)
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


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "colours", {"red": 12, "blue": 12, "green": 12})


@pytest.fixture
def in_repo(monkeypatch):
    """Paths show relative to the working directory: the workbench's snapshots run from the repository root."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def pets(tmp_path, monkeypatch):
    """37 classes with Oxford-IIIT Pets' names (generated, seeded) for the workbench's snapshots; the app runs
    from tmp_path, so every path it shows reads "pets/…" on any machine."""
    monkeypatch.chdir(tmp_path)
    make_pets_like(tmp_path / "pets", per_class=4, size=32)
    return "pets"
