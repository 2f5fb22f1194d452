"""The engine never imports a UI library: importing every engine module loads no textual, rich or tui."""

import subprocess
import sys

from helpers.data import ROOT

CODE = """
import importlib, pkgutil, sys, engine
for m in pkgutil.walk_packages(engine.__path__, 'engine.'):
    importlib.import_module(m.name)
bad = sorted(n for n in sys.modules if n.split('.')[0] in ('textual', 'rich', 'rich_pixels', 'tui'))
print(len(list(pkgutil.walk_packages(engine.__path__, 'engine.'))))
print(','.join(bad))
"""


def test_engine_imports_no_ui_modules():
    out = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, bad = out.stdout.strip().split("\n") + [""] * (2 - len(out.stdout.strip().split("\n")))
    assert int(count) >= 15  # the walk really imported the engine's modules
    assert bad == "", f"engine imports UI modules: {bad}"


HELP = """
import contextlib, io, sys
from tui.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
assert "usage: tlbench" in out.getvalue(), out.getvalue()
print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'torchvision', 'textual'))))
"""


def test_help_loads_no_torch():
    """`tlbench --help` and `tlbench train --help` answer without importing torch (seconds) or the app."""
    for args in (["--help"], ["train", "--help"], ["export", "--help"]):
        out = subprocess.run([sys.executable, "-c", HELP, *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "", f"{args} imported {out.stdout.strip()[:200]}"
