"""The report's first sections, as plain data for the template: the overview, the recipe (every setting, the
auto search, the command that reproduces it), the dataset (classes, counts, split, excluded files, duplicate
groups) and the environment (device, precision, versions, time)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.report.pictures import THUMB, embed_file
from engine.report.sources import RunFiles, split_entries, split_groups

# shown in their own sections, not in the recipe's table of settings
NOT_SETTINGS = frozenset({"classes", "versions", "created", "resumed", "auto", "train_images", "val_images",
                          "skipped_images", "excluded_images", "duplicates_moved", "dataset_layout",
                          "dataset_fingerprint", "device_resolved", "precision_resolved", "channels_last_resolved",
                          "world_size", "preprocessing", "kind"})
SETTINGS_FIRST = ("dataset", "backbone", "mode", "epochs", "batch_size", "lr", "img_size", "seed", "val_fraction",
                  "weights", "weights_identity", "precision", "device")
MAX_PICTURES = 24  # excluded files and duplicate groups shown as pictures; the rest listed by name
GROUP_PICTURES = 6  # members of one duplicate group pictured (a group of 1,000 blank frames is one line)

Reproduce = Callable[[Mapping[str, Any]], str]


def number(value: Any, digits: int = 4) -> str:
    """A metric as the report prints it; "—" for none (a class never predicted has no precision)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def setting_text(value: Any) -> str:
    if value is None:
        return "— (default)"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def shown_path(path: str, root: str) -> str:
    """A file as the reader knows it: relative to the dataset's folder when it is inside it."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def overview(files: RunFiles) -> dict:
    c, r, s, m = files.config, files.report or {}, files.summary or {}, files.metrics
    best = max((row for row in m if isinstance(row.get("val_acc"), (int, float))), default=None,
               key=lambda row: row["val_acc"])
    status = (files.status or {}).get("status") or ("done" if files.summary else "unfinished")
    return {
        "accuracy": r.get("accuracy"), "accuracy_text": number(r.get("accuracy")), "top5": number(r.get("top5")),
        "n": r.get("n"), "split": r.get("split"), "checkpoint": r.get("checkpoint"),
        "best_val_acc": number(best["val_acc"]) if best else "—", "best_epoch": best["epoch"] if best else "—",
        "epochs": len(m), "planned_epochs": c.get("epochs"), "status": status,
        "classes": len(files.classes), "backbone": c.get("backbone"), "mode": c.get("mode"),
        "train_images": c.get("train_images"), "val_images": c.get("val_images"),
        "seconds": duration(s.get("seconds")),
    }


def recipe(files: RunFiles, reproduce: Reproduce | None) -> dict:
    """Every setting the run recorded, the auto search's winner and leaderboard, and the train command."""
    c = files.config
    keys = [k for k in SETTINGS_FIRST if k in c] + sorted(k for k in c if k not in SETTINGS_FIRST)
    rows = [(k, setting_text(c[k])) for k in keys if k not in NOT_SETTINGS]
    prep = c.get("preprocessing")
    if isinstance(prep, dict):
        rows.append(("preprocessing", f"resize {prep.get('resize_size')} ({prep.get('interpolation')}), center "
                                      f"crop {prep.get('crop_size')}, mean {prep.get('mean')}, std {prep.get('std')}"))
    command, command_note = None, None
    if reproduce is not None:
        try:
            command = reproduce(c)
        except Exception as err:  # noqa: BLE001 - a config the command builder cannot read: say so, go on
            command_note = f"The command could not be built from config.json ({err})."
    return {"rows": rows, "command": command, "command_note": command_note, "auto": auto_search(files)}


def auto_search(files: RunFiles) -> dict | None:
    """--mode auto: the winner, its CV accuracy ± std across folds, and every candidate tried."""
    board = files.leaderboard or files.config.get("auto")
    if not isinstance(board, dict):
        return None
    entries = board.get("leaderboard") or []
    winner = next((e for e in entries if e.get("recipe") == board.get("winner")), None)
    rows = [{"recipe": e.get("recipe", "?"), "cv": number(e.get("cv_accuracy")), "std": number(e.get("cv_std")),
             "top5": number(e.get("cv_top5")), "seconds": number(e.get("seconds"), 1),
             "skipped": e.get("skipped"), "winner": e is winner} for e in entries if isinstance(e, dict)]
    settings = board.get("winner_settings")
    settings = settings if isinstance(settings, dict) else {}
    return {"winner": board.get("winner"), "settings": [(k, setting_text(v)) for k, v in settings.items()],
            "cv_accuracy": number(board.get("cv_accuracy")), "cv_std": number((winner or {}).get("cv_std")),
            "folds": board.get("folds"), "scored_on": board.get("scored_on"),
            "search_seconds": duration(board.get("search_seconds")), "budget_minutes": board.get("budget_minutes"),
            "rows": rows}


def in_dataset(path: str, root: str) -> str:
    """split.json's paths are relative to the dataset root (the plan replays on a moved dataset)."""
    return path if Path(path).is_absolute() or not root else str(Path(root) / path)


def dataset(files: RunFiles) -> dict:
    """Classes with their counts, the split's totals, excluded files and duplicate groups — from split.json,
    the recorded plan, when the run has one; else from config.json's totals and report.json's supports."""
    c, classes = files.config, files.classes
    root = str(c.get("dataset") or "")
    split = files.split
    train_n: Counter[str] = Counter()
    val_n: Counter[str] = Counter()
    if split is not None:
        train_n.update(k for _, k in split_entries(split.get("train"), classes) if k is not None)
        val_n.update(k for _, k in split_entries(split.get("val"), classes) if k is not None)
    elif files.report:
        val_n.update({str(p.get("class")): int(p.get("support") or 0) for p in files.report.get("per_class", [])})
    known_train = split is not None and bool(train_n)
    rows = [{"class": k, "train": train_n[k] if known_train else None,
             "val": val_n[k] if known_train or k in val_n else None,  # a recorded 0 is 0, not unknown
             "total": train_n[k] + val_n[k] if known_train else None} for k in classes]
    if split is not None and isinstance(split.get("excluded_files", split.get("excluded")), list):
        excluded = [in_dataset(p, root)
                    for p, _ in split_entries(split.get("excluded_files", split.get("excluded")), classes)]
        excluded_from = "split.json: what the run left out"
    else:
        excluded = files.excluded
        excluded_from = f"the exclude list as it is now, {files.exclude_source}" if files.exclude_source else None
    groups = [[in_dataset(p, root) for p in g] for g in split_groups(split)] if split is not None else []
    groups_from = "split.json: the groups the run kept on one side of the split" if groups else None
    if not groups and files.audit:  # the last audit's groups across the split: what --group-duplicates moves
        groups = [list(map(str, d.get("paths", []))) for d in files.audit.get("duplicates", [])
                  if d.get("across_split")]
        moved = c.get("duplicates_moved")
        kept = (f"training kept each on one side ({moved} images moved)" if moved
                else "left where the plain split put them: validation may score copies of training images"
                if c.get("group_duplicates") == "off" else "the run moved no image")
        groups_from = f"the dataset's last audit, groups across the plain split; {kept}" if groups else None
    return {
        "root": root, "layout": c.get("dataset_layout"), "fingerprint": c.get("dataset_fingerprint"),
        "rows": rows, "has_split_file": split is not None, "train_known": known_train,
        "totals": [("training images", c.get("train_images")), ("validation images", c.get("val_images")),
                   ("unreadable, skipped", c.get("skipped_images")), ("excluded", c.get("excluded_images")),
                   ("moved to keep duplicate groups on one side", c.get("duplicates_moved")),
                   ("validation fraction", c.get("val_fraction")), ("split seed", c.get("seed")),
                   ("exclude", c.get("exclude")), ("group duplicates", c.get("group_duplicates"))],
        "excluded": [{"path": shown_path(p, root), "picture": embed_file(p, THUMB) if i < MAX_PICTURES else None}
                     for i, p in enumerate(excluded)],
        "excluded_from": excluded_from,
        "groups": [{"members": [{"path": shown_path(p, root), "picture": embed_file(p, THUMB)}
                                for p in g[:GROUP_PICTURES]] if i < MAX_PICTURES else [],
                    "paths": [shown_path(p, root) for p in g]} for i, g in enumerate(groups)],
        "groups_from": groups_from,
    }


def environment(files: RunFiles) -> dict:
    """Where and how it ran: device, precision, versions; when it ran and for how long."""
    c, status, s = files.config, files.status or {}, files.summary or {}
    versions = c.get("versions")
    versions = versions if isinstance(versions, dict) else {}
    epoch_seconds = sum(float(r.get("seconds") or 0) for r in files.metrics)
    # fine-tuning records the autocast it resolved; a probe's feature extraction reports its own in the summary
    precision = c.get("precision_resolved") or s.get("extract_precision") or c.get("precision")
    return {
        "device": [("device", c.get("device_resolved") or c.get("device")), ("processes", c.get("world_size")),
                   ("precision", precision), ("channels_last", c.get("channels_last_resolved")),
                   ("weights", c.get("weights_identity")), ("host", status.get("host"))],
        "versions": sorted(versions.items()),
        "time": [("created", c.get("created")), ("resumed", ", ".join(map(str, c.get("resumed") or [])) or None),
                 ("status", status.get("status")), ("last update", status.get("updated")),
                 ("duration (without pauses)", duration(s.get("seconds")) if s else None),
                 ("epochs' time", duration(epoch_seconds) if files.metrics else None)],
    }
