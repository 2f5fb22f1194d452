"""What the tests share besides fixtures: data they make (helpers.data), the workbench driven in tests
(helpers.tui), runs and reports of a real length (helpers.results). tests/ is on pytest's path, so a test
imports `from helpers.tui import make_app`."""
