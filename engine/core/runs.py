"""The run directory: config, metrics, checkpoints and reports, all written atomically.

runs/<timestamp>-<dataset>-<backbone>-<mode>/
    config.json     everything needed to reproduce the run (seed and versions included)
    metrics.jsonl   one line per epoch
    best.pt last.pt checkpoints (engine.core.checkpoints: loaded with weights_only=True)
    report.json     final metrics
    status.json     running | stopped | failed | done, with the process, host and error (write_status)
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

from engine.core.errors import EXIT_FAILED, RunError
from engine.core.files import atomic_write_json, atomic_write_text, read_json
from engine.core.records import RunRecord

# No torch here (the checkpoints and the library versions are engine.core.checkpoints'): listing runs, reading
# metrics and writing the scan cache stay light, so the workbench's first screen does not wait for PyTorch.



def runs_root(arg: str | os.PathLike | None = None) -> Path:
    """--runs-dir, else $TLBENCH_RUNS, else ./runs."""
    return Path(arg or os.environ.get("TLBENCH_RUNS") or "runs").expanduser()




def safe_name(text: str) -> str:
    """A file-name part made only of letters, digits, '_', '.', '-': user text (a class name, a label) can
    never add a path separator or climb out with '..'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "x"


# folder names that say how a dataset is laid out, not which one it is: a run names the folder above them
GENERIC_FOLDERS = frozenset({"images", "image", "imgs", "img", "jpg", "jpgs", "jpeg", "photos", "pictures",
                             "train", "training", "val", "valid", "validation", "test", "data", "dataset",
                             "all", "raw", "files"})


def dataset_label(root: str | os.PathLike) -> str:
    """The dataset's name in a run's folder name: the folder's own name, or "parent-folder" when the folder is
    only called `images`, `train`, `data` … (Oxford-IIIT Pets unpacks to oxford-iiit-pet/images: its runs say
    "oxford-iiit-pet-images", not "images")."""
    path = Path(root).expanduser()
    name = path.name or str(path)
    if name.lower() in GENERIC_FOLDERS and path.parent.name:
        return f"{path.parent.name}-{name}"
    return name


def create_run_dir(root: Path, dataset: str, *parts: str) -> Path:
    """root/<timestamp>-<dataset>-<parts…>[-N]/, created (a training run: dataset, backbone, mode; a comparison:
    dataset, "compare")."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = "-".join([stamp, safe_name(dataset), *(safe_name(p) for p in parts)])
    for i in range(1, 1000):
        path = root / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"Could not create a run directory under {root}: too many runs named {base}.",
                   exit_code=EXIT_FAILED)  # not the user's input: a thousand runs started in one second


def resolve_run_dir(value: str | os.PathLike, root: Path | None = None) -> Path:
    """A run given by path or by name inside the runs root; names cannot escape the root."""
    path = Path(value).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    if root is not None and not path.is_absolute():
        candidate = (root / path).resolve()
        if not candidate.is_relative_to(root.resolve()):
            raise RunError(f"Run name {str(value)!r} points outside the runs directory {root}.")
        if candidate.is_dir() and (candidate / "config.json").exists():
            return candidate
    if path.is_dir():
        raise RunError(f"{value} is not a tlbench run: it has no config.json. Pass a directory under runs/.")
    raise RunError(f"Run directory {value} not found. List runs with `ls {root or 'runs'}`.")


STATUS_FILE = "status.json"
RUN_STATUSES = ("running", "stopped", "failed", "done")


def write_status(run_dir: Path, status: str, error: str | None = None) -> None:
    """status.json: what the run is doing and, once it ended, how. The workbench's Runs screen reads it, so a
    run that failed before its first epoch says "failed" and why, not just "no epochs"."""
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    path = run_dir / STATUS_FILE
    try:  # the first write of this run's life has none to keep
        started = read_json(path).get("started") if path.exists() else None
    except (RunError, AttributeError):  # unreadable or not an object: start afresh
        started = None
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(path, {"status": status, "error": error, "pid": os.getpid(), "host": platform.node(),
                             "started": started or now, "updated": now})


def save_config(run_dir: Path, config: dict) -> None:
    atomic_write_json(run_dir / "config.json", config)


def load_config(run_dir: str | os.PathLike) -> RunRecord:
    """The run's config.json, typed (RunRecord.raw keeps every key, known or not). Raises RunError when a
    key every run has (classes, backbone, dataset, preprocessing) is missing."""
    path = Path(run_dir) / "config.json"
    return RunRecord.from_dict(read_json(path), source=str(path))


def read_config_json(run_dir: str | os.PathLike) -> dict:
    """config.json as it is, for displays that show every key and must still show a partial or damaged run
    (the workbench's run list); jobs use load_config."""
    data = read_json(Path(run_dir) / "config.json")
    if not isinstance(data, dict):
        raise RunError(f"{Path(run_dir) / 'config.json'} holds {type(data).__name__}, not a run record.")
    return data


def append_metrics(run_dir: Path, row: dict) -> None:
    """Add one epoch's line to metrics.jsonl. The file is rewritten atomically, so it is never half-written."""
    path = Path(run_dir) / "metrics.jsonl"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, old + json.dumps(row, default=float) + "\n")


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def update_report(run_dir: Path, updates: dict) -> dict:
    """Merge top-level keys into the run's report.json (evaluation, robustness …) atomically."""
    path = Path(run_dir) / "report.json"
    report = read_json(path) if path.exists() else {}
    report.update(updates)
    atomic_write_json(path, report)
    return report








def list_runs(root: Path) -> list[Path]:
    """The runs with a config.json (training and lr-find runs), newest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / "config.json").exists()), reverse=True)


# The kinds of folder the jobs write under the runs root. Training and lr-find write config.json (its "kind":
# "train" or "lr-find"); a comparison and an audit write no config.json, only their result file.
RUN_KINDS = ("train", "lr-find", "compare", "audit")
RESULT_FILES = {"lr-find": "lr_find.json", "compare": "compare.json", "audit": "audit.json"}


def run_kind(run_dir: str | os.PathLike, config: dict | None = None) -> str:
    """What job wrote the folder: "train" (older runs recorded no kind: they are all training runs),
    "lr-find", "compare" or "audit"."""
    if config is not None:
        kind = str(config.get("kind") or "train")
        return kind if kind in RUN_KINDS else "train"
    for kind in ("compare", "audit"):
        if (Path(run_dir) / RESULT_FILES[kind]).exists():
            return kind
    return "train"


def list_run_folders(root: Path) -> list[Path]:
    """Every folder a job wrote under the runs root, newest first: runs (config.json), comparisons and audits."""
    if not root.is_dir():
        return []
    wanted = ("config.json", RESULT_FILES["compare"], RESULT_FILES["audit"])
    return sorted((p for p in root.iterdir() if p.is_dir() and any((p / f).exists() for f in wanted)),
                  reverse=True)
