"""top-5 on 5 classes or fewer is 1.000 by construction (issue 24 item 7): Results and the run's detail leave it
out there, and keep it where it says something."""

from __future__ import annotations

import json

from helpers.tui import make_app, sample_report, text_of, wait_for, write_run


async def test_top5_is_left_out_for_two_classes_and_kept_for_ten(tmp_path):
    two = write_run(tmp_path / "runs", "20260101-120000-cats-dogs-efficientnet_lite0-probe", report=False,
                    classes=["cat", "dog"])
    report = {"split": "val", "checkpoint": "best.pt", "n": 40, "classes": ["cat", "dog"], "accuracy": 0.95,
              "top5": 1.0, "confusion": [[19, 1], [1, 19]], "top_losses": [], "most_confused": [],
              "per_class": [{"class": c, "precision": 0.95, "recall": 0.95, "accuracy": 0.95, "support": 20}
                            for c in ("cat", "dog")]}
    (two / "report.json").write_text(json.dumps(report))
    ten = write_run(tmp_path / "runs")  # digits: 10 classes
    assert sample_report([str(i) for i in range(10)])["top5"] < 1
    for run, shown in ((two, False), (ten, True)):
        app = make_app(runs_dir=str(tmp_path / "runs"))
        app.state.run_dir = run
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("4")
            await wait_for(pilot, lambda app=app: app.screen.view is not None, 30, "the report")
            header = text_of(app, "#results-header")
            assert "accuracy" in header and ("top-5" in header) == shown, header
