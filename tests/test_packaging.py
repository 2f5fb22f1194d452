"""A plain `pip install` works, not only the editable one: the wheel built from this repository carries the
demo dataset and the app's stylesheet, and its console script answers `--version` and scans the demo from a
directory outside the repository. The version has one source (the distribution's metadata)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers.data import ROOT

import engine

PYPROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
DEMO_IMAGES = len(list((ROOT / "data" / "demo" / "digits").glob("*/*.png")))


def test_the_version_comes_from_the_distribution(capsys):
    from tui.main import main

    assert engine.__version__ == PYPROJECT_VERSION
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"tlbench {PYPROJECT_VERSION}"


def test_a_source_checkout_without_metadata_reads_pyproject(monkeypatch):
    def not_installed(name):
        raise engine.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(engine.metadata, "version", not_installed)
    assert engine._version() == PYPROJECT_VERSION


def test_a_source_checkout_finds_the_demo_in_data():
    from engine.core.paths import demo_dataset

    assert demo_dataset() == ROOT / "data" / "demo" / "digits"


def package_folders(root: Path) -> set[str]:
    return {str(p.parent.relative_to(root)).replace(os.sep, "/") for top in ("engine", "tui")
            for p in (root / top).rglob("__init__.py")}


def run(cmd, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the repository, installed with --no-deps into a fresh venv that sees
    this environment's dependencies through a .pth file (offline: nothing is downloaded)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("engine", "tui", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    # A module fixture runs before conftest's per-test isolation: isolate these processes here.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(TLBENCH_OFFLINE="1", TLBENCH_CACHE=str(base / "cache"), TLBENCH_RUNS=str(base / "runs"),
               TLBENCH_DATA=str(base / "data"), TORCH_HOME=str(base / "torch"))
    env.pop("XDG_CACHE_HOME", None)
    run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "--no-index",
         "-w", base / "dist"], base, env)
    (wheel,) = (base / "dist").glob("tlbench-*.whl")

    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], base, env)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base, env).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "outer-dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    # pip comes from the outer environment too; --ignore-installed: never touch the outer tlbench
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel], base, env)
    outside = base / "elsewhere"  # not the repository: nothing can be imported from the source tree
    outside.mkdir()
    return {"wheel": wheel, "venv": venv, "python": python, "site": Path(site), "cwd": outside, "env": env,
            "bin": python.parent}


def test_the_wheel_holds_every_package_the_demo_and_the_stylesheet(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    in_wheel = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert in_wheel == package_folders(ROOT), "list new package folders in pyproject's [tool.setuptools] packages"
    assert sum(n.startswith("engine/demo/digits/") and n.endswith(".png") for n in names) == DEMO_IMAGES
    assert "engine/demo/ATTRIBUTION.md" in names and "tui/tlbench.tcss" in names
    assert {f"engine/report/templates/{t}" for t in ("report.html", "run.html", "report.css", "sort.js")} <= set(names)


def test_the_console_script_prints_the_version(installed):
    out = run([installed["bin"] / "tlbench", "--version"], installed["cwd"], installed["env"])
    assert out.stdout.strip() == f"tlbench {PYPROJECT_VERSION}"


CHECK = """
import json
from importlib import resources
from pathlib import Path
import engine
from engine.core.paths import demo_dataset
import tui.app
from tui.app import create_app
demo = demo_dataset()
print(json.dumps({
    "engine": engine.__file__, "version": engine.__version__, "demo": str(demo),
    "images": len(list(demo.glob("*/*.png"))), "app_dataset": str(create_app().state.dataset),
    "tcss": resources.files("tui").joinpath("tlbench.tcss").is_file(), "tui": tui.app.__file__,
}))
"""


def test_the_installed_package_finds_its_demo_and_stylesheet(installed):
    out = run([installed["python"], "-c", textwrap.dedent(CHECK)], installed["cwd"], installed["env"])
    got = json.loads(out.stdout)
    site = installed["site"].resolve()
    assert Path(got["engine"]).resolve().is_relative_to(site) and Path(got["tui"]).resolve().is_relative_to(site)
    assert Path(got["demo"]).resolve() == site / "engine" / "demo" / "digits"
    assert got["images"] == DEMO_IMAGES and got["tcss"] is True and got["version"] == PYPROJECT_VERSION
    assert got["app_dataset"] == got["demo"]  # `tlbench` with no argument opens the bundled demo


def test_the_console_script_scans_the_installed_demo(installed):
    demo = installed["site"] / "engine" / "demo" / "digits"
    out = run([installed["bin"] / "tlbench", "scan", demo, "--json"], installed["cwd"], installed["env"])
    scan = json.loads(out.stdout)
    assert scan["images"] == DEMO_IMAGES and [c["name"] for c in scan["classes"]] == [str(d) for d in range(10)]
    assert scan["unreadable"] == []
