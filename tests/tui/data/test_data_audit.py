"""The Audit view (a on the Data screen) marks files into the exclude list; `r` runs a real audit; `h` on a
preview swaps the picture for its Grad-CAM overlay and back."""

from __future__ import annotations

from helpers.data import make_dataset
from helpers.tui import (
    make_app,
    scan_finished,
    wait_for,
)
from textual.widgets import DataTable, Static

from engine.data.exclude import exclude_file, read_exclude, save_audit
from tui.data.audit import AuditScreen
from tui.widgets.image_view import ImageView
from tui.widgets.thumbnails import MemoryImage


async def test_audit_view_marks_files_to_exclude_and_runs_the_audit(tmp_path, monkeypatch):
    import engine.features.audit_job as job_module

    def quick_audit(params, ctx):  # the real job is tests/engine/train/test_audit.py's; here: the wiring
        return {"dataset": params.dataset, "backbone": params.backbone, "images": 12, "label_issues": [],
                "duplicates": [], "outliers": [], "cv_accuracy": 1.0}

    monkeypatch.setattr(job_module, "audit_job", quick_audit)
    root = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6})
    p = {name: str(root / name.split("_")[0] / f"{name}.png") for name in ("red_1", "red_2", "blue_0", "blue_1")}
    save_audit(root, {"dataset": str(root), "backbone": "efficientnet_lite0", "images": 12,
                      "label_issues": [{"path": p["red_1"], "given": "red", "suggested": "blue", "score": 0.9}],
                      "duplicates": [{"paths": [p["blue_0"], p["blue_1"]], "similarity": 0.97,
                                      "labels": ["blue", "blue"], "across_split": True, "exact": False,
                                      "conflicting_labels": False}],
                      "outliers": [{"path": p["red_2"], "score": 0.8, "nearest": "red"}], "leaking_groups": 1})
    app = make_app(root)
    async with app.run_test(size=(120, 35)) as pilot:
        await scan_finished(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen), 10, "the audit view")
        table = app.screen.query_one("#audit-list", DataTable)
        # issue 24: suspects, not "likely label errors", and the backbone that suspects them
        title = str(app.screen.query_one("#audit-title", Static).render())
        assert "by efficientnet_lite0" in title and "1 label suspects" in title and "label errors" not in title
        assert [str(table.get_row_at(i)[1]) for i in range(table.row_count)] == ["label", "dup", "outlier"]
        await pilot.press("space")  # mark the label suspect
        await pilot.pause()
        assert read_exclude(exclude_file(root), root) == {p["red_1"]}
        await pilot.press("down")
        await pilot.pause()
        assert not app.screen.query_one("#audit-b", ImageView).has_class("hidden")  # the pair side by side
        assert "LEAKS" in str(app.screen.query_one("#audit-detail", Static).render())
        await pilot.press("space")  # a duplicate group: every copy but the first
        await pilot.pause()
        assert read_exclude(exclude_file(root), root) == {p["red_1"], p["blue_1"]}
        await pilot.press("up", "space")  # unmark
        await pilot.pause()
        assert read_exclude(exclude_file(root), root) == {p["blue_1"]}
        assert str(table.get_row_at(1)[0]) == "✗" and str(table.get_row_at(0)[0]) == " "
        await pilot.press("r")  # a new audit, run by the Data screen as a job, then the view shows it
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.audit is not None
                       and "cv_accuracy" in app.screen.audit, 60, "the new audit")
        await pilot.pause()
        assert app.screen.rows == [] and "Nothing suspicious" in str(app.screen.query_one("#audit-detail",
                                                                                         Static).render())
        assert read_exclude(exclude_file(root), root) == {p["blue_1"]}  # marks survive a new audit


async def test_h_on_a_preview_shows_the_heatmap_and_back(tmp_path):
    root = make_dataset(tmp_path / "colours", {"red": 3, "blue": 3}, size=48)
    app = make_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_finished(pilot)
        await pilot.press("g", "enter")
        await pilot.pause()
        preview, view = app.screen, app.screen.query_one("#preview-image", ImageView)
        await pilot.press("h")
        await wait_for(pilot, lambda: preview.heat_note, 120, "the heatmap")
        assert preview.heat_note.startswith("Grad-CAM of"), preview.heat_note
        assert isinstance(view.source, MemoryImage) and "efficientnet_lite0" in preview.heat_note
        assert "Grad-CAM of" in str(preview.query_one("#preview-details", Static).render())
        await pilot.press("h")
        await pilot.pause()
        assert view.source == preview.items[preview.index].path
