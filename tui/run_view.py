"""Reading a run for the Results and Runs screens (no torch): config, metrics, summary and report.json.

report.json (written by engine.evaluate.evaluation):
  {"split", "checkpoint", "n", "classes", "accuracy", "top5",
   "per_class": [{"class", "precision", "recall", "f1", "support", "accuracy" (one-vs-rest, not shown)}],
   "confusion": [[int]] (rows = true, columns = predicted), "most_confused": [{"true", "predicted", "count"}],
   "top_losses": [{"path", "true", "predicted", "prob_true", "prob_predicted", "loss"}] (mistakes only),
   "mistakes": [the same rows: every wrong prediction, highest loss first, capped] (absent in older reports),
   "robustness": {...} (engine.adversarial.attacks' sweep)}

Older reports are read too: F1 (and precision, recall, support when a report has none) come from the confusion
matrix, and the right answers older reports listed among the top losses are left out.

A run's status comes from its files (see `run_status`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import RunError
from engine.core.files import read_json
from engine.core.runs import STATUS_FILE, read_config_json, read_metrics


@dataclass
class RunView:
    """Everything the screens show about one run; `report` is None until the run has been evaluated."""

    run_dir: Path
    config: dict
    metrics: list[dict]
    summary: dict | None
    report: dict | None
    report_error: str | None = None
    notes: list[str] = field(default_factory=list)
    marker: dict | None = None  # status.json, when the engine wrote one
    running: bool = False  # set by the Runs screen for the run this workbench's training job is writing now
    has_checkpoint: bool = False  # last.pt or best.pt exists

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def classes(self) -> list[str]:
        if self.report and self.report.get("classes"):
            return list(self.report["classes"])
        return list(self.config.get("classes", []))

    @property
    def best_val_acc(self) -> float | None:
        if self.summary and isinstance(self.summary.get("best_val_acc"), (int, float)):
            return float(self.summary["best_val_acc"])
        accs = [m["val_acc"] for m in self.metrics if isinstance(m.get("val_acc"), (int, float))]
        return max(accs) if accs else None

    @property
    def seconds(self) -> float | None:
        if self.summary and isinstance(self.summary.get("seconds"), (int, float)):
            return float(self.summary["seconds"])
        secs = [m["seconds"] for m in self.metrics if isinstance(m.get("seconds"), (int, float))]
        return sum(secs) if secs else None

    @property
    def status(self) -> str:
        """done | running | stopped | failed (see run_status)."""
        return "running" if self.running else run_status(self)[0]

    @property
    def status_detail(self) -> str:
        if self.running:
            return "training now in this workbench (3 Train shows it)"
        return run_status(self)[1]

    @property
    def created(self) -> str:
        """'2026-11-28 14:03' from config.json, else from the directory's time."""
        raw = self.config.get("created")
        if isinstance(raw, str) and len(raw) >= 16:
            return raw[:10] + " " + raw[11:16]
        try:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.run_dir.stat().st_mtime))
        except OSError:
            return "-"

    @property
    def dataset(self) -> str:
        return Path(str(self.config.get("dataset", "-"))).name or "-"




def process_alive(marker: dict) -> bool:
    """Whether the process a "running" status.json names still runs (unknowable for another host: yes)."""
    pid = marker.get("pid")
    if marker.get("host") != platform.node() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's
        return True
    return True


def run_status(view: RunView) -> tuple[str, str]:
    """(status, why) from the run's files, for runs this workbench is not training right now.

    - summary.json: the run finished ("done").
    - status.json, when the engine wrote one: its "status" (and "error"), trusted as written.
    - epochs in metrics.jsonl or a last.pt, without a summary: "stopped" (stopped, interrupted, or it failed
      mid-way; `tlbench train --resume` continues fine-tuning runs).
    - config.json alone: "failed" — a run that never finished an epoch nor saved a checkpoint failed (or was
      stopped) at start. A run another process is starting right now also looks like this until the engine
      records its status.
    """
    if view.summary is not None:
        return "done", "finished (summary.json written)"
    marker = view.marker
    if marker and marker.get("status") == "running" and not process_alive(marker):
        return "stopped", (f"its process ({marker.get('pid')}) ended without recording how: killed or crashed; "
                           "`tlbench train --resume` continues fine-tuning runs from last.pt")
    if marker and marker.get("status") in ("running", "failed", "stopped", "done"):
        return str(marker["status"]), str(marker.get("error") or marker.get("reason") or "as the engine recorded it")
    epochs = len(view.metrics)
    if epochs or view.has_checkpoint:
        return "stopped", (f"{epochs} epoch(s) recorded, no summary.json: it stopped before its last epoch"
                           if epochs else "a checkpoint but no epoch recorded: it stopped during its first epoch")
    return "failed", ("only config.json: no epoch finished and no checkpoint was saved, so it failed "
                      "(or was stopped) at start")


def normalise_report(report: Any, classes: list[str]) -> dict:
    """The report with every key the screens read present and of the right shape (missing parts empty)."""
    if not isinstance(report, dict):
        raise RunError("report.json does not hold a JSON object. Re-run `tlbench eval RUN` to rewrite it.")
    out = dict(report)
    out["classes"] = list(report.get("classes") or classes)
    n = len(out["classes"])
    confusion = report.get("confusion") or []
    if confusion and (len(confusion) != n or any(len(r) != n for r in confusion)):
        raise RunError(f"report.json's confusion matrix is not {n}x{n} for {n} classes. "
                       "Re-run `tlbench eval RUN` to rewrite it.")
    out["confusion"] = [[int(v) for v in row] for row in confusion]
    per_class = [r for r in report.get("per_class") or [] if isinstance(r, dict)]
    if not per_class and out["confusion"]:
        per_class = per_class_from_confusion(out["confusion"], out["classes"])
    out["per_class"] = [with_f1(r) for r in per_class]
    out["most_confused"] = [r for r in report.get("most_confused") or [] if isinstance(r, dict)]
    # mistakes only: reports written before the fix listed right answers among the "top losses"
    out["top_losses"] = [r for r in report.get("top_losses") or [] if isinstance(r, dict) and r.get("path")
                         and r.get("true") != r.get("predicted")]
    # None: a report written before mistakes were listed; cells then fall back to the top losses
    mistakes = report.get("mistakes")
    out["mistakes"] = ([r for r in mistakes if isinstance(r, dict) and r.get("path")]
                       if isinstance(mistakes, list) else None)
    if not out["most_confused"] and out["confusion"]:
        out["most_confused"] = most_confused(out["confusion"], out["classes"])
    return out


def with_f1(row: dict) -> dict:
    """The row with "f1" (older reports have precision and recall only)."""
    if "f1" in row:
        return row
    p, r = row.get("precision"), row.get("recall")
    if not (isinstance(p, (int, float)) and isinstance(r, (int, float))):
        return {**row, "f1": None}
    return {**row, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def per_class_from_confusion(confusion: list[list[int]], classes: list[str]) -> list[dict]:
    """Precision, recall and support per class from the matrix (rows true, columns predicted)."""
    rows = []
    for k, name in enumerate(classes):
        tp, support = confusion[k][k], sum(confusion[k])
        predicted = sum(row[k] for row in confusion)
        rows.append({"class": name, "precision": tp / predicted if predicted else None,
                     "recall": tp / support if support else None, "support": support})
    return rows


def most_confused(confusion: list[list[int]], classes: list[str], limit: int = 20) -> list[dict]:
    pairs = [{"true": classes[i], "predicted": classes[j], "count": c}
             for i, row in enumerate(confusion) for j, c in enumerate(row) if i != j and c > 0]
    return sorted(pairs, key=lambda p: -p["count"])[:limit]


def load_run_view(run_dir: str | Path) -> RunView:
    """Read a run directory; a missing or damaged report is noted, not raised (the run still shows)."""
    run_dir = Path(run_dir)
    config = read_config_json(run_dir)
    try:
        metrics = read_metrics(run_dir)
    except (OSError, json.JSONDecodeError):
        metrics = []
    summary = None
    if (run_dir / "summary.json").exists():
        try:
            summary = read_json(run_dir / "summary.json")
        except RunError:
            summary = None
    marker = None
    if (run_dir / STATUS_FILE).exists():
        try:
            marker = read_json(run_dir / STATUS_FILE)
        except RunError:
            marker = None
    view = RunView(run_dir, config, metrics, summary, None, marker=marker if isinstance(marker, dict) else None,
                   has_checkpoint=(run_dir / "last.pt").exists() or (run_dir / "best.pt").exists())
    path = run_dir / "report.json"
    if path.exists():
        try:
            view.report = normalise_report(read_json(path), list(config.get("classes", [])))
        except RunError as err:
            view.report_error = err.message
    return view


def list_run_views(root: Path, limit: int = 500) -> list[RunView]:
    """Newest first; unreadable directories are skipped (they are not runs)."""
    from engine.core.runs import list_runs

    out = []
    for run_dir in list_runs(root)[:limit]:
        try:
            out.append(load_run_view(run_dir))
        except (RunError, OSError, ValueError):
            continue
    return out
