"""The train/validation split a run trains on: `split_dataset`'s, minus the files the user excluded, with each
duplicate group of the dataset's last audit kept on one side (so validation never scores a copy of a training
image). One function, `plan_split`, used by training (engine.train.prepare) and by the workbench's Data
screen, so the split the screen shows is the split a run gets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.exclude import exclude_file, load_audit, read_exclude
from engine.data.layouts import DatasetInfo, Sample
from engine.data.scan import split_dataset

GROUP_DUPLICATES = ("auto", "on", "off")


@dataclass
class SplitPlan:
    train: list[Sample]
    val: list[Sample]
    excluded: int = 0  # images left out (the exclude list's, found in this dataset)
    exclude_source: Path | None = None
    unmatched: int = 0  # lines of the exclude list that name no usable image of this dataset
    audited: bool = False  # the dataset has an audit
    leaking: int = 0  # duplicate groups that straddle the plain split
    moved: int = 0  # images moved to keep each group on one side
    fixed: bool = False  # the layout fixes the split (train/ and val/ folders): leakage only reported
    mode: str = "auto"
    notes: list[tuple[str, str]] = field(default_factory=list)  # (level, text): what training logs

    @property
    def grouped(self) -> bool:
        """Whether the duplicate groups that leaked were moved to one side."""
        return self.moved > 0


def plan_split(info: DatasetInfo, val_fraction: float = 0.2, seed: int = 0, exclude: str | None = "auto",
               group_duplicates: str = "auto") -> SplitPlan:
    """The split of `info` with its exclusions and duplicate grouping applied; `info` itself is not changed.

    exclude: "auto" (the dataset's own list, engine.data.exclude, if any), "none", or a file (a missing one
    is a ConfigError). group_duplicates: "on", "off", or "auto" (on when the last audit found groups across
    the split)."""
    names, source = excluded_names(info, exclude)
    kept = [s for s in info.samples if str(Path(s.path).resolve()) not in names] if names else info.samples
    plan = SplitPlan([], [], excluded=len(info.samples) - len(kept), exclude_source=source if names else None,
                     mode=group_duplicates, fixed=any(s.split for s in info.samples))
    if names:
        plan.unmatched = len(names) - plan.excluded
        n = plan.excluded
        plan.notes.append(("info", f"excluded {n} image{'s' if n != 1 else ''} listed in {source} (left in "
                                   "place, not trained on)"))
        if plan.unmatched:
            plan.notes.append(("warning", f"{plan.unmatched} path(s) in {source} are not usable images of "
                                          "this dataset"))
    train, val = split_dataset(dataclasses.replace(info, samples=kept), val_fraction, seed)
    plan.train, plan.val = group_split(plan, train, val, info.root)
    return plan


def excluded_names(info: DatasetInfo, exclude: str | None) -> tuple[set[str], Path | None]:
    """The resolved paths to leave out, and the list they came from (None: no exclusion asked)."""
    choice = (exclude or "auto").strip()
    if choice.lower() == "none":
        return set(), None
    auto = choice.lower() == "auto"
    source = exclude_file(info.root) if auto else Path(choice).expanduser()
    return read_exclude(source, info.root, missing_ok=auto), source


def group_split(plan: SplitPlan, train: list[Sample], val: list[Sample],
                root: Path) -> tuple[list[Sample], list[Sample]]:
    """Keep each duplicate group of the dataset's last audit on one side of the split: a group that straddles
    it moves to the side most of it is on (train on a tie). Counts go to `plan`. A split the layout fixes is
    the user's: leakage there is only reported."""
    mode = plan.mode
    audit = load_audit(root)
    plan.audited = audit is not None
    groups = [d.get("paths", []) for d in (audit or {}).get("duplicates", [])]
    side = {s.path: "train" for s in train} | {s.path: "val" for s in val}
    leaking = [g for g in groups if len({side[p] for p in g if p in side}) > 1]
    plan.leaking = len(leaking)
    if mode == "on" and audit is None:
        plan.notes.append(("warning", "--group-duplicates on, but this dataset has no audit: run `tlbench "
                                      "audit` first"))
    if leaking and mode == "off":
        plan.notes.append(("warning", f"{len(leaking)} duplicate group(s) of the last audit straddle the split "
                                      "(leakage); --group-duplicates auto or on keeps each on one side"))
    if not leaking or mode == "off":
        return train, val
    if plan.fixed:
        plan.notes.append(("warning", f"{len(leaking)} duplicate group(s) straddle the dataset's own train/val "
                                      "folders (leakage): move or exclude one copy of each (see `tlbench audit`)"))
        return train, val
    for group in leaking:
        members = [p for p in group if p in side]
        target = "val" if sum(side[p] == "val" for p in members) * 2 > len(members) else "train"
        for p in members:
            if side[p] != target:
                side[p], plan.moved = target, plan.moved + 1
    by_path = {s.path: s for s in train + val}
    train = [by_path[p] for p, where in side.items() if where == "train"]
    val = [by_path[p] for p, where in side.items() if where == "val"]
    plan.notes.append(("info", f"the last audit found {len(leaking)} duplicate group(s) across the split: kept "
                               f"each on one side ({plan.moved} image(s) moved; --group-duplicates off to keep "
                               "the plain split)"))
    return train, val
