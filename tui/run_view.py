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
from engine.core.runs import (
    GENERIC_FOLDERS,
    RESULT_FILES,
    STATUS_FILE,
    dataset_label,
    list_run_folders,
    read_config_json,
    read_metrics,
    run_kind,
)


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
    kind: str = "train"  # engine.core.runs.RUN_KINDS: train, lr-find, compare, audit
    result: dict | None = None  # lr_find.json, compare.json or audit.json: what a job of another kind wrote
    leaderboard: dict | None = None  # an auto run's leaderboard.json (its winner and every recipe scored)
    other_finished: str | None = None  # when a comparison's or an audit's result was written

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def what(self) -> str:
        """The mode column: a training run's mode, else its kind (an lr-find is not a failed training run)."""
        return str(self.config.get("mode", "-")) if self.kind == "train" else self.kind

    @property
    def finished(self) -> str | None:
        """'2026-11-28 14:05', when the run ended (summary.json's "finished", or status.json's last update
        of a finished run); None for runs that have not, or that did not record it."""
        raw = (self.summary or {}).get("finished")
        if raw is None and self.marker and self.marker.get("status") in ("done", "stopped", "failed"):
            raw = self.marker.get("updated")
        return short_time(raw) or self.other_finished

    @property
    def checkpoint_said(self) -> str:
        """Which model the report's numbers are of: "best.pt (epoch 4 of 5)" (Train's last line is the last
        epoch's validation, which may be lower)."""
        checkpoint = str((self.report or {}).get("checkpoint") or "best.pt")
        epoch, epochs = (self.summary or {}).get("best_epoch"), (self.summary or {}).get("epochs")
        if checkpoint == "best.pt" and isinstance(epoch, int):
            return f"{checkpoint} (epoch {epoch}" + (f" of {epochs})" if isinstance(epochs, int) else ")")
        return checkpoint

    @property
    def report_written(self) -> str | None:
        """When report.json was written ('2026-11-28 14:05'); None for reports that did not record it."""
        return short_time((self.report or {}).get("written"))

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
        stamp = self.name[:15]  # engine.core.runs.create_run_dir: <YYYYmmdd-HHMMSS>-…
        if len(stamp) == 15 and stamp[8] == "-" and (stamp[:8] + stamp[9:]).isdigit():
            return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}"
        try:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.run_dir.stat().st_mtime))
        except OSError:
            return "-"

    @property
    def dataset(self) -> str:
        """As the run's folder names it: the parent folder too when the dataset's folder is `images` …"""
        raw = self.config.get("dataset")
        return dataset_label(str(raw)) if raw else "-"

    def dataset_in(self, width: int) -> str:
        """The dataset's name in `width` characters (the Runs list at 80 columns): whole when it fits, else the
        generic folder dropped ("oxford-iiit-pet" for …/oxford-iiit-pet/images) and the start kept, where
        dataset names differ ("oxford-ii…", not "oxfor…ages")."""
        label = self.dataset
        if len(label) <= width:
            return label
        raw = Path(str(self.config.get("dataset") or "")).expanduser()
        if raw.name.lower() in GENERIC_FOLDERS and raw.parent.name:
            label = raw.parent.name
        return label if len(label) <= width else label[:max(0, width - 1)] + "…"


def short_time(raw) -> str | None:
    """'2026-11-28T14:05:09+0000' -> '2026-11-28 14:05'."""
    return raw[:10] + " " + raw[11:16] if isinstance(raw, str) and len(raw) >= 16 else None


def mtime_text(path: Path) -> str | None:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    except OSError:
        return None




def auto_board(view: RunView) -> dict | None:
    """An auto run's search: leaderboard.json, else what config.json or summary.json kept of it."""
    for board in (view.leaderboard, view.config.get("auto"), (view.summary or {}).get("auto")):
        if isinstance(board, dict) and board.get("winner"):
            return board
    return None


def recipe_lines(view: RunView, limit: int = 5) -> list[str]:
    """An auto run's winning recipe and its leaderboard of recipes, best first ([] for other runs)."""
    board = auto_board(view)
    if board is None:
        return []
    cv = board.get("cv_accuracy")
    lines = [f"auto chose: {board['winner']}",
             f"CV accuracy {cv:.4f}" if isinstance(cv, (int, float)) else "CV accuracy -"]
    if board.get("folds"):
        folds = f"{board['repeats']} x {board['folds']}" if board.get("repeats") else str(board["folds"])
        lines[-1] += f", {folds}-fold on the {board.get('scored_on', 'training split')}"
    rows = [e for e in board.get("leaderboard") or [] if isinstance(e, dict)]
    if rows:
        lines.append(f"leaderboard ({len(rows)} recipes):")
    for i, e in enumerate(rows[:limit]):
        acc, std = e.get("cv_accuracy"), e.get("cv_std")
        if isinstance(acc, (int, float)):
            score = f"{acc:.4f}" + (f" ±{std:.3f}" if isinstance(std, (int, float)) else "")
        else:
            score = f"skipped ({e.get('skipped', '-')})"
        lines.append(f"{i + 1:>2}. {score}  {e.get('recipe', '?')}")
    if len(rows) > limit:
        lines.append(f"    … {len(rows) - limit} more in leaderboard.json")
    return lines


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
    if view.kind != "train":
        return other_kind_status(view)
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


def other_kind_status(view: RunView) -> tuple[str, str]:
    """An lr-find, a comparison or an audit: done when its result file is there (a comparison stopped part-way
    writes what it measured, marked incomplete)."""
    marker = view.marker
    if view.result is not None:
        if view.kind == "compare" and view.result.get("complete") is False:
            return "stopped", "the comparison stopped before every backbone was measured (compare.json has the rest)"
        return "done", f"{kind_summary(view.kind, view.result)}; not a training run: no model to use"
    if marker and marker.get("status") == "running" and process_alive(marker):
        return "running", "as the engine recorded it"
    return "stopped", f"no {RESULT_FILES[view.kind]}: the {view.kind} job stopped or failed before writing it"


def kind_summary(kind: str, result: dict) -> str:
    """One line of what an lr-find, a comparison or an audit found."""
    if kind == "lr-find":
        lr = result.get("suggested_lr")
        return "lr range test: suggested lr " + (f"{lr:.2g}" if isinstance(lr, (int, float)) else "none")
    if kind == "compare":
        return f"comparison of {len(result.get('results') or [])} backbones: best {result.get('best') or '-'}"
    issues = result.get("label_issues")
    return f"data audit: {len(issues) if isinstance(issues, list) else '-'} suspected label issue(s)"


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
    # the right answers it was least sure of (absent in older reports: none)
    out["least_confident"] = [r for r in report.get("least_confident") or [] if isinstance(r, dict) and r.get("path")]
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
    if not (run_dir / "config.json").exists() and run_kind(run_dir) != "train":
        return other_kind_view(run_dir)
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
                   has_checkpoint=(run_dir / "last.pt").exists() or (run_dir / "best.pt").exists(),
                   kind=run_kind(run_dir, config))
    if view.kind != "train":
        view.result = read_object(run_dir / RESULT_FILES[view.kind])
    if (run_dir / "leaderboard.json").exists():
        view.leaderboard = read_object(run_dir / "leaderboard.json")
    path = run_dir / "report.json"
    if path.exists():
        try:
            view.report = normalise_report(read_json(path), list(config.get("classes", [])))
        except RunError as err:
            view.report_error = err.message
    return view


def read_object(path: Path) -> dict | None:
    """A JSON object the run wrote, or None when it is missing or damaged (the run still shows)."""
    try:
        data = read_json(path) if path.exists() else None
    except RunError:
        return None
    return data if isinstance(data, dict) else None


def other_kind_view(run_dir: Path) -> RunView:
    """A comparison's or an audit's folder (no config.json): its result file says what it was run on."""
    kind = run_kind(run_dir)
    result = read_object(run_dir / RESULT_FILES[kind])
    got = result or {}
    backbone = got.get("best") if kind == "compare" else got.get("backbone")
    config = {"kind": kind, "dataset": got.get("dataset", ""), "backbone": backbone or "-", "mode": kind}
    view = RunView(run_dir, {k: v for k, v in config.items() if v}, [], None, None, kind=kind, result=result,
                   other_finished=mtime_text(run_dir / RESULT_FILES[kind]))
    return view


def list_run_views(root: Path, limit: int = 500) -> list[RunView]:
    """Newest first: runs, lr-finds, comparisons and audits; unreadable directories are skipped."""
    out = []
    for run_dir in list_run_folders(root)[:limit]:
        try:
            out.append(load_run_view(run_dir))
        except (RunError, OSError, ValueError):
            continue
    return out
