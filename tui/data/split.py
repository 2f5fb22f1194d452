"""The Data screen's train/validation split: the very split a run of the current settings trains on
(engine.data.splits.plan_split: the exclude list left out, duplicate groups of the last audit kept on one
side), and the line that says so."""

from __future__ import annotations

from engine.data.layouts import DatasetInfo
from engine.data.splits import plan_split

# TrainConfig's defaults (engine.train.config imports torch, too slow for the screen's first paint)
DEFAULTS = {"val_fraction": 0.2, "seed": 0, "exclude": "auto", "group_duplicates": "auto"}


def split_settings(config: dict) -> tuple:
    """(val_fraction, seed, exclude, group_duplicates) from the workbench's settings."""
    return tuple(DEFAULTS[k] if config.get(k) in (None, "") else config[k] for k in DEFAULTS)


def split_counts(info: DatasetInfo, val_fraction: float, seed: int, exclude: str = "auto",
                 group_duplicates: str = "auto") -> dict:
    """Per-class train/val counts, each file's side and what changed the plain split; or why there is none."""
    try:
        plan = plan_split(info, val_fraction, seed, exclude, group_duplicates)
    except Exception as err:  # noqa: BLE001 - shown in the summary line (e.g. one class only)
        return {"error": str(err)}
    n = len(info.classes)
    tr, va = [0] * n, [0] * n
    for s in plan.train:
        tr[s.label] += 1
    for s in plan.val:
        va[s.label] += 1
    sides = {s.path: "train" for s in plan.train} | {s.path: "val" for s in plan.val}
    return {"train": tr, "val": va, "sides": sides, "fixed": plan.fixed, "val_fraction": val_fraction,
            "seed": seed, "excluded": plan.excluded, "leaking": plan.leaking, "moved": plan.moved,
            "group_duplicates": group_duplicates}


def split_line(split: dict) -> str:
    """What the summary says about the split, leakage first when the audit found some that stays."""
    if "error" in split:
        return f"no split: {split['error']}"
    if not split:
        return "split …"
    counts = f"split {sum(split['train'])} train / {sum(split['val'])} val"
    how = " (from the folders)" if split.get("fixed") else f" ({split['val_fraction']:.0%} val, seed {split['seed']})"
    parts = [counts + how]
    if split.get("excluded"):
        parts.append(f"{split['excluded']} excluded")
    leaking, moved = split.get("leaking", 0), split.get("moved", 0)
    groups = f"{leaking} duplicate group{'s' if leaking != 1 else ''}"
    if moved:
        parts.append(f"{groups} kept on one side (k: off)")
    elif leaking:  # off, or a split fixed by the folders: validation scores copies of training images
        fix = "k keeps each on one side" if not split.get("fixed") else "exclude one copy (a)"
        parts.append(f"⚠ {groups} LEAK across the split: {fix}")
    return " · ".join(parts)
