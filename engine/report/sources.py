"""What a report reads from disk: a run's own files, and its dataset's audit and exclude list.

Every file but config.json is optional: a run stopped before its first epoch, one never evaluated, one
written by an older tlbench still makes a report, whose sections say what is missing and how to get it.
A damaged JSON file is an error that names the file (engine.core.files.read_json).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import ConfigError, RunError
from engine.core.files import read_json
from engine.core.runs import list_runs, read_config_json, read_metrics, resolve_run_dir, runs_root
from engine.data.exclude import exclude_file, load_audit, read_exclude

SPLIT_FILE = "split.json"  # the recorded split plan (train/val lists, excluded files, duplicate groups moved)


@dataclass
class RunFiles:
    """Everything a run left on disk that a report shows; None or empty where a file is absent."""

    run_dir: Path
    config: dict[str, Any]
    metrics: list[dict] = field(default_factory=list)
    report: dict | None = None
    summary: dict | None = None
    status: dict | None = None
    leaderboard: dict | None = None  # --mode auto's search
    split: dict | None = None  # split.json
    attacks: list[dict] = field(default_factory=list)  # each attack folder's summary.json, "dir" added
    dreams: list[Path] = field(default_factory=list)  # RUN/dreams/*.png
    audit: dict | None = None  # the dataset's last audit (engine.data.exclude)
    excluded: list[str] = field(default_factory=list)  # the exclude list that applied, as absolute paths
    exclude_source: str | None = None
    notes: list[str] = field(default_factory=list)  # what could not be read, said in the report

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.config.get("classes") or []]


def find_run(value: str | os.PathLike) -> Path:
    """A run folder by path, or by name under the runs root; the error names an existing run as an example."""
    root = runs_root()
    try:
        return resolve_run_dir(value, root)
    except RunError as err:
        example = next(iter(list_runs(root)), None)
        hint = (f"e.g. tlbench report {example}" if example is not None
                else f"e.g. tlbench report {root}/<run>; train one first with `tlbench train DATASET`")
        if Path(value).expanduser().is_dir():
            raise RunError(f"{value} is not a run folder (no config.json). Pass a folder under {root}/, "
                           f"{hint}.") from None
        raise RunError(f"Run directory {value} not found. Pass a folder under {root}/, {hint}.") from err


def _optional_json(path: Path, notes: list[str]) -> Any:
    """The file's JSON, or None when it is absent; a damaged one is noted (the rest of the report still helps)."""
    if not path.exists():
        return None
    try:
        return read_json(path)
    except RunError as err:
        notes.append(str(err))
        return None


def read_run(run_dir: Path) -> RunFiles:
    """The run's files, read once. Raises RunError for a missing or unreadable config.json only."""
    config = read_config_json(run_dir)
    files = RunFiles(run_dir, config)
    notes = files.notes
    try:
        files.metrics = read_metrics(run_dir)
    except ValueError as err:
        notes.append(f"{run_dir / 'metrics.jsonl'} has a line that is not JSON ({err}): curves left out.")
    for attr, name in (("report", "report.json"), ("summary", "summary.json"), ("status", "status.json"),
                       ("leaderboard", "leaderboard.json"), ("split", SPLIT_FILE)):
        value = _optional_json(run_dir / name, notes)
        setattr(files, attr, value if isinstance(value, dict) else None)
    files.attacks = read_attacks(run_dir, notes)
    files.dreams = sorted((run_dir / "dreams").glob("*.png")) if (run_dir / "dreams").is_dir() else []
    dataset = str(config.get("dataset") or "")
    if dataset:
        files.audit = load_audit(dataset)
        files.excluded, files.exclude_source = exclude_list(config, dataset, notes)
    return files


def read_attacks(run_dir: Path, notes: list[str]) -> list[dict]:
    """RUN/attacks/<time>-<label>/summary.json of each attack made on the run's model, oldest first."""
    base = run_dir / "attacks"
    out = []
    for summary in sorted(base.glob("*/summary.json")) if base.is_dir() else []:
        data = _optional_json(summary, notes)
        if isinstance(data, dict):
            out.append({**data, "dir": str(summary.parent)})
    return out


def exclude_list(config: dict, dataset: str, notes: list[str]) -> tuple[list[str], str | None]:
    """The images the run was asked to leave out: its --exclude file, or the dataset's own list (auto), as it
    is now. split.json, when the run has one, says what was really left out (engine.report.sections)."""
    choice = str(config.get("exclude") or "auto").strip()
    if choice.lower() == "none":
        return [], None
    auto = choice.lower() == "auto"
    source = exclude_file(dataset) if auto else Path(choice).expanduser()
    try:
        return sorted(read_exclude(source, dataset, missing_ok=True)), str(source) if source.exists() else None
    except ConfigError as err:  # a list since deleted or unreadable: the rest of the report still helps
        notes.append(str(err))
        return [], None


# ------------------------------------------------------------------------------------ split.json, tolerantly


def split_entries(value: Any, classes: list[str]) -> list[tuple[str, str | None]]:
    """(path, class or None) for a split.json list: paths, {"path", "class"|"label"} objects, or an object of
    parallel "paths" and "labels" lists. A bare path's class is its folder's name when that is a class."""
    if isinstance(value, dict):
        paths, labels = value.get("paths") or [], value.get("labels") or []
        value = [{"path": p, "label": labels[i] if i < len(labels) else None} for i, p in enumerate(paths)]
    out: list[tuple[str, str | None]] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            path = str(item.get("path", ""))
            label = item.get("class", item.get("label"))
        elif isinstance(item, list) and len(item) == 2:  # engine.data.splits.plan_record: [relative path, label]
            path, label = str(item[0]), item[1]
        else:
            path, label = str(item), None
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(classes):
            label = classes[label]
        if label is None and Path(path).parent.name in classes:
            label = Path(path).parent.name
        out.append((path, None if label is None else str(label)))
    return out


def split_groups(split: dict) -> list[list[str]]:
    """The duplicate groups split.json says were kept on one side: lists of paths, or objects with "paths"."""
    for key in ("groups_kept", "duplicate_groups", "groups", "duplicates"):
        groups = split.get(key)
        if isinstance(groups, list):
            out = []
            for g in groups:
                paths = g.get("paths") if isinstance(g, dict) else g
                if isinstance(paths, list):
                    out.append([str(p.get("path", "")) if isinstance(p, dict) else str(p) for p in paths])
            return out
    return []
