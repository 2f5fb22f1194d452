"""The Audit view (`a` on the Data screen): the last audit's suspects — likely label errors, duplicate groups,
outliers — each with its picture (a duplicate pair side by side), where the user marks files to leave out of
training. Marks go to the dataset's exclude list in tlbench's state (engine.data.exclude), saved at once;
nothing in the dataset folder is moved or deleted. `r` runs the audit again: DatasetAudit, the widget the Data
screen composes, opens the view and runs the audit as its job.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Static

from engine.core.events import JobFailed, JobFinished
from engine.data.exclude import exclude_file, read_exclude, write_exclude
from tui.base_app import workbench_of
from tui.data.split import split_settings
from tui.engine_calls import AuditParams, audit_job
from tui.jobs import RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.state import display_path
from tui.widgets.image_view import ImageView
from tui.widgets.keybar import KeyBar
from tui.widgets.thumbnails import ThumbnailCache

MARK = "✗"


def suspects(audit: dict) -> list[dict]:
    """One row per suspect: {"kind", "score", "paths" (shown), "targets" (what a mark excludes), "detail"}.

    A duplicate group's mark excludes every copy but the first, so one image of it is still trained on."""
    rows = []
    for i in audit.get("label_issues", []):
        rows.append({"kind": "label", "score": i["score"], "paths": [i["path"]], "targets": [i["path"]],
                     "detail": f"labelled {i['given']}, looks like {i['suggested']}"})
    for d in audit.get("duplicates", []):
        flags = (["exact copy" if d.get("exact") else "near duplicate"]
                 + (["LEAKS across the train/val split"] if d.get("across_split") else [])
                 + ([f"labels differ: {', '.join(sorted(set(d['labels'])))}"] if d.get("conflicting_labels") else []))
        rows.append({"kind": "dup", "score": d["similarity"], "paths": d["paths"], "targets": d["paths"][1:],
                     "detail": " · ".join(flags) + (f" · {len(d['paths'])} images" if len(d["paths"]) > 2 else "")})
    for o in audit.get("outliers", []):
        rows.append({"kind": "outlier", "score": o["score"], "paths": [o["path"]], "targets": [o["path"]],
                     "detail": f"far from every class (nearest: {o.get('nearest', '?')})"})
    return rows


class AuditScreen(ModalScreen[str | None]):
    """Dismissed with "run" when the user asks for a new audit, else None."""

    DEFAULT_CSS = """
    #audit-box { width: 98%; height: 96%; border: round $accent; background: $surface; }
    #audit-title { height: auto; padding: 0 1; }
    #audit-body { height: 1fr; }
    #audit-list { width: 1fr; height: 1fr; }
    #audit-images { width: 1fr; height: 1fr; }
    #audit-pair { height: 1fr; }
    #audit-pair ImageView { width: 1fr; height: 1fr; }
    #audit-detail { height: auto; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="audit.close"),
        Binding("space", "mark", "Exclude", id="audit.mark",
                tooltip="Mark (or unmark) the highlighted file(s) to leave out of training; saved at once"),
        Binding("x", "mark", "Exclude", show=False, id="audit.mark_x"),
        Binding("r", "run", "Re-audit", id="audit.run", tooltip="Run the audit again (tlbench audit)"),
    ]

    def __init__(self, root: Path, audit: dict | None, cache: ThumbnailCache) -> None:
        super().__init__()
        self.root, self.audit, self.cache = Path(root), audit, cache
        self.rows = suspects(audit) if audit else []
        self.marked = {os.path.realpath(p) for p in read_exclude(exclude_file(root), root, missing_ok=True)}

    def compose(self) -> ComposeResult:
        with Vertical(id="audit-box"):
            yield Static(id="audit-title", markup=False)
            with Horizontal(id="audit-body"):
                yield DataTable(id="audit-list", cursor_type="row", zebra_stripes=False)
                with Vertical(id="audit-images"):
                    with Horizontal(id="audit-pair"):
                        yield ImageView(self.cache, id="audit-a")
                        yield ImageView(self.cache, id="audit-b", classes="hidden")
                    yield Static(id="audit-detail", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#audit-list", DataTable)
        table.add_columns(" ", "kind", "score", "file")
        for k, row in enumerate(self.rows):
            table.add_row(self._row_mark(row), row["kind"], f"{row['score']:.3f}", self._row_files(row), key=str(k))
        self._show_counts()
        if self.rows:
            table.move_cursor(row=0)
            self.show_row(0)
        else:
            self.query_one("#audit-detail", Static).update(
                "No audit of this dataset yet: r runs one (cached features, cleanlab on out-of-fold probe "
                "probabilities, duplicate search)." if self.audit is None else "Nothing suspicious found.")
        table.focus()

    def _row_files(self, row: dict) -> str:
        names = [self._rel_path(p) for p in row["paths"][:2]]
        more = f" +{len(row['paths']) - 2}" if len(row["paths"]) > 2 else ""
        return " = ".join(names) + more

    def _rel_path(self, path: str) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return display_path(path)

    def _row_mark(self, row: dict) -> str:
        return MARK if row["targets"] and all(os.path.realpath(p) in self.marked for p in row["targets"]) else " "

    def _show_counts(self) -> None:
        a = self.audit or {}
        # "suspects", not errors: they are the images a probe on one backbone disagrees with (another backbone
        # finds others; on a curated dataset most are right), so the backbone is named with the count
        counts = (f"{len(a.get('label_issues', []))} label suspects · {len(a.get('duplicates', []))} duplicate "
                  f"groups ({a.get('leaking_groups', 0)} across the split) · {len(a.get('outliers', []))} outliers")
        head = f"Audit of {self.root.name}" + (f" by {a.get('backbone')} ({a.get('images')} images)" if a else "")
        self.query_one("#audit-title", Static).update(
            f"{head}: {counts}\n{len(self.marked)} marked to exclude → {display_path(exclude_file(self.root))}"
            if a else f"{head}: no audit yet")

    @on(DataTable.RowHighlighted, "#audit-list")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_row(event.cursor_row)

    def show_row(self, index: int) -> None:
        if not 0 <= index < len(self.rows):
            return
        row = self.rows[index]
        second = self.query_one("#audit-b", ImageView)
        self.query_one("#audit-a", ImageView).show(row["paths"][0])
        second.set_class(len(row["paths"]) < 2, "hidden")
        if len(row["paths"]) > 1:
            second.show(row["paths"][1])
        marked = " · marked: left out of training" if self._row_mark(row) == MARK else " · space marks to exclude"
        self.query_one("#audit-detail", Static).update(
            f"{row['detail']}{marked}\n" + "\n".join(self._rel_path(p) for p in row["paths"][:4]))

    def action_mark(self) -> None:
        table = self.query_one("#audit-list", DataTable)
        index = table.cursor_row
        if not 0 <= index < len(self.rows):
            return
        row = self.rows[index]
        targets = {os.path.realpath(p) for p in row["targets"]}
        self.marked = self.marked - targets if self._row_mark(row) == MARK else self.marked | targets
        write_exclude(self.root, self.marked)
        for k, other in enumerate(self.rows):  # a file can be in several rows (a duplicate and a label issue)
            table.update_cell(str(k), table.ordered_columns[0].key, self._row_mark(other))
        self._show_counts()
        self.show_row(index)

    def action_run(self) -> None:
        self.dismiss("run")

    def action_close(self) -> None:
        self.dismiss(None)


class DatasetAudit(Widget):
    """The Audit view and the audit job of the open dataset, with nothing to show of its own. Posts Closed when
    the view closes (its marks change what the split holds), Started when an audit starts and Ended when it ends
    (after a completed one the view opens again, on the new audit)."""

    DEFAULT_CSS = "DatasetAudit { display: none; }"

    class Closed(Message):
        pass

    class Started(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name  # the dataset's

    class Ended(Message):
        def __init__(self, failed: bool) -> None:
            super().__init__()
            self.failed = failed

    def __init__(self) -> None:
        super().__init__()
        self.root: Path | None = None
        self.dataset_name = ""

    def open(self, root: Path, name: str, audit: dict | None) -> None:
        """The view of `audit` (None: no audit yet); its `r` runs a new one here."""
        self.root, self.dataset_name = Path(root), name
        app = workbench_of(self)

        def closed(choice: str | None) -> None:
            self.post_message(self.Closed())
            if choice == "run" and not app.jobs.running("audit"):
                self.post_message(self.Started(name))
                config = app.state.config
                self.run_audit(app.begin_job("audit"), Path(root), config.get("backbone"), split_settings(config)[:2])

        self.app.push_screen(AuditScreen(root, audit, app.thumbnails), closed)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def run_audit(self, job: RunningJob, root: Path, backbone: str | None, split: tuple[float, int]) -> None:
        params = AuditParams(str(root), val_fraction=split[0], seed=split[1])
        if backbone:
            params.backbone = backbone
        run_engine_job(self, job, lambda ctx: audit_job(params, ctx), workbench_of(self).jobs)

    def on_job_audit_finished(self, message: JobEvent[JobFinished]) -> None:
        self.post_message(self.Ended(failed=False))
        if message.event.reason == "completed" and self.root is not None:
            self.open(self.root, self.dataset_name, message.event.result)

    def on_job_audit_failed(self, message: JobEvent[JobFailed]) -> None:
        self.post_message(self.Ended(failed=True))
