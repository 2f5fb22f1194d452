"""The engine never imports a UI library: importing every engine module loads no textual, rich or tui."""

import subprocess
import sys

from conftest import ROOT

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
