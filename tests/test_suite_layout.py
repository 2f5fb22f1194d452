"""The suite's own shape (issue 25, item 4): tests mirror the tree, and shared helpers come from tests/helpers,
never from conftest (a conftest is pytest's to load; importing it by name runs it a second time as another
module, with its own copies of every global)."""

import ast

from helpers.data import ROOT

TESTS = ROOT / "tests"


def test_no_test_imports_from_conftest():
    offenders = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n and n.split(".")[0] == "conftest" for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"import these from tests/helpers instead: {offenders}"


def test_each_screen_has_its_test_folder():
    screens = {p.parent.name for p in (ROOT / "tui").glob("*/screen.py")}
    assert screens, "no tui/<screen>/screen.py found"
    missing = sorted(s for s in screens if not any((TESTS / "tui" / s).glob("test_*.py")))
    assert not missing, f"tests/tui/<screen>/ missing for {missing}"
