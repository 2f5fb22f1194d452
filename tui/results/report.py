"""Reading a run for the Results and Runs screens (no torch): config, metrics, summary and report.json.

report.json (written by engine.evaluation):
  {"split", "checkpoint", "n", "classes", "accuracy", "top5",
   "per_class": [{"class", "precision", "recall", "accuracy", "support"}],
   "confusion": [[int]] (rows = true, columns = predicted), "most_confused": [{"true", "predicted", "count"}],
   "top_losses": [{"path", "true", "predicted", "prob_true", "prob_predicted", "loss"}],
   "mistakes": [the same rows: every wrong prediction, highest loss first, capped] (absent in older reports),
   "robustness": {...} (engine.attacks' sweep)}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import RunError
from engine.runs import load_config, read_json, read_metrics


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
        if self.summary is not None:
            return "done"
        return "stopped" if self.metrics else "no epochs"

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
    out["per_class"] = [r for r in report.get("per_class") or [] if isinstance(r, dict)]
    out["most_confused"] = [r for r in report.get("most_confused") or [] if isinstance(r, dict)]
    out["top_losses"] = [r for r in report.get("top_losses") or [] if isinstance(r, dict) and r.get("path")]
    # None: a report written before mistakes were listed; cells then fall back to the top losses
    mistakes = report.get("mistakes")
    out["mistakes"] = ([r for r in mistakes if isinstance(r, dict) and r.get("path")]
                       if isinstance(mistakes, list) else None)
    if not out["most_confused"] and out["confusion"]:
        out["most_confused"] = most_confused(out["confusion"], out["classes"])
    return out


def most_confused(confusion: list[list[int]], classes: list[str], limit: int = 20) -> list[dict]:
    pairs = [{"true": classes[i], "predicted": classes[j], "count": c}
             for i, row in enumerate(confusion) for j, c in enumerate(row) if i != j and c > 0]
    return sorted(pairs, key=lambda p: -p["count"])[:limit]


def load_run_view(run_dir: str | Path) -> RunView:
    """Read a run directory; a missing or damaged report is noted, not raised (the run still shows)."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
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
    view = RunView(run_dir, config, metrics, summary, None)
    path = run_dir / "report.json"
    if path.exists():
        try:
            view.report = normalise_report(read_json(path), list(config.get("classes", [])))
        except RunError as err:
            view.report_error = err.message
    return view


def list_run_views(root: Path, limit: int = 500) -> list[RunView]:
    """Newest first; unreadable directories are skipped (they are not runs)."""
    from engine.runs import list_runs

    out = []
    for run_dir in list_runs(root)[:limit]:
        try:
            out.append(load_run_view(run_dir))
        except (RunError, OSError, ValueError):
            continue
    return out
