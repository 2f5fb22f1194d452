"""The train/validation split a run trains on: `split_dataset`'s, minus the files the user excluded, with each
duplicate group of the dataset's last audit kept on one side (so validation never scores a copy of a training
image). One function, `plan_split`, used by training (engine.train.prepare), auto's search and by the
workbench's Data screen, so the split the screen shows is the split a run gets.

A run's plan is made once and recorded in the run (split.json: the lists, and the inputs that made them); every
later job on the run (resume, eval, robustness, the workbench's Results) replays it with `replay_plan`, never a
fresh split: the exclude list, the audit or the files may have changed since. What changed is said, and
`--replan` plans again from the dataset as it is now.

`kept_samples` and `sample_groups` give the same two rules to cross-validation (auto, compare, audit): excluded
files are never scored, and a duplicate group never straddles two folds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.errors import ConfigError, DatasetError
from engine.core.files import atomic_write_json
from engine.data.exclude import exclude_file, load_audit, read_exclude
from engine.data.layouts import DatasetInfo, Sample
from engine.data.scan import split_dataset

PLAN_FILE = "split.json"
PLAN_FORMAT = 1


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
    excluded_paths: list[str] = field(default_factory=list)  # the files left out (absolute)
    moved_groups: list[list[str]] = field(default_factory=list)  # the duplicate groups kept on one side

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
    # resolving every path costs ~20 µs a file: only when there is a list to match (the Data screen replans
    # on every change of the fraction or seed)
    out = {s.path for s in info.samples if str(Path(s.path).resolve()) in names} if names else set()
    kept = [s for s in info.samples if s.path not in out] if out else info.samples
    plan = SplitPlan([], [], excluded=len(info.samples) - len(kept), exclude_source=source if names else None,
                     mode=group_duplicates, fixed=any(s.split for s in info.samples),
                     excluded_paths=[s.path for s in info.samples if s.path in out])
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
        plan.moved_groups.append(members)
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


# ------------------------------------------------------------------------------ excluded files and groups


def kept_samples(info: DatasetInfo, exclude: str | None = "auto") -> tuple[list[Sample], int]:
    """The samples cross-validation may score: all but the exclude list's (the dataset's own for "auto");
    and how many were left out."""
    names, _ = excluded_names(info, exclude)
    kept = [s for s in info.samples if str(Path(s.path).resolve()) not in names] if names else list(info.samples)
    return kept, len(info.samples) - len(kept)


def sample_groups(root: str | os.PathLike, paths: list[str], audit: dict | None = None) -> list[int]:
    """A group number per path for group-aware folds: the members of one duplicate group of the dataset's last
    audit (or `audit`) share theirs, every other file has its own."""
    audit = load_audit(root) if audit is None else audit
    group_of: dict[str, tuple] = {}
    for g, d in enumerate((audit or {}).get("duplicates", [])):
        for p in d.get("paths", []):
            group_of[p] = ("duplicates", g)
    ids: dict[tuple, int] = {}
    return [ids.setdefault(group_of.get(p, ("file", i)), len(ids)) for i, p in enumerate(paths)]


# ------------------------------------------------------------------------------ the recorded plan


def _rel(path: str, root: Path) -> str:
    return os.path.relpath(path, root)


def plan_digest(train: list[Sample], val: list[Sample], root: Path) -> str:
    """A hash of the two lists (relative paths and labels): two jobs with equal digests score the same images."""
    h = hashlib.sha256()
    for side, samples in (("train", train), ("val", val)):
        for s in sorted(samples, key=lambda s: s.path):
            h.update(f"{side}|{_rel(s.path, root)}|{s.label}\n".encode())
    return h.hexdigest()[:32]


def plan_record(plan: SplitPlan, info: DatasetInfo, val_fraction: float, seed: int, exclude: str | None,
                group_duplicates: str) -> dict:
    """split.json: the lists (relative to the dataset root) and the inputs that made them."""
    root = info.root
    audit = load_audit(root)
    return {
        "format": PLAN_FORMAT,
        "dataset": str(root),
        "classes": list(info.classes),
        "inputs": {"val_fraction": val_fraction, "seed": seed, "exclude": exclude or "auto",
                   "group_duplicates": group_duplicates,
                   "exclude_source": str(plan.exclude_source) if plan.exclude_source else None,
                   "audit": audit.get("run_dir") if audit else None},
        "excluded": plan.excluded, "unmatched": plan.unmatched, "leaking": plan.leaking, "moved": plan.moved,
        "excluded_files": [_rel(p, root) for p in plan.excluded_paths],
        "groups_kept": [[_rel(p, root) for p in g] for g in plan.moved_groups],
        "fixed": plan.fixed, "notes": [list(n) for n in plan.notes],
        "digest": plan_digest(plan.train, plan.val, root),
        "train": [[_rel(s.path, root), s.label] for s in plan.train],
        "val": [[_rel(s.path, root), s.label] for s in plan.val],
    }


def save_plan(run_dir: Path, record: dict) -> Path:
    path = Path(run_dir) / PLAN_FILE
    atomic_write_json(path, record)
    return path


def load_plan(run_dir: str | os.PathLike) -> dict | None:
    """A run's recorded plan, or None (a run from before plans were recorded)."""
    path = Path(run_dir) / PLAN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise DatasetError(f"The run's split plan {path} cannot be read ({err}). Pass --replan to plan the split "
                           "again from the dataset as it is now.") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or not isinstance(data.get("train"), list):
        raise DatasetError(f"The run's split plan {path} is not one this tlbench reads (format "
                           f"{data.get('format') if isinstance(data, dict) else '?'}). Pass --replan to plan the "
                           "split again from the dataset as it is now.")
    return data


@dataclass
class PlanChanges:
    """How the dataset differs from a recorded plan: files of the plan that are gone (or unusable now), in
    another class now, or excluded since (all three left out), and usable files the plan does not know
    (added since: not used)."""

    gone: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.gone or self.relabelled or self.excluded or self.unknown)

    def describe(self, limit: int = 3) -> str:
        parts = []
        for what, paths in (("gone or unusable", self.gone), ("in another class now (left out)", self.relabelled),
                            ("excluded since (left out)", self.excluded),
                            ("new (not in the plan, not used)", self.unknown)):
            if paths:
                shown = ", ".join(paths[:limit]) + (f" … ({len(paths) - limit} more)" if len(paths) > limit else "")
                parts.append(f"{len(paths)} {what}: {shown}")
        return "; ".join(parts)


def replay_plan(info: DatasetInfo, recorded: dict) -> tuple[list[Sample], list[Sample], PlanChanges]:
    """The recorded plan's train and validation lists on the dataset as scanned now: the files still there (and
    not excluded since), in the plan's order and on the plan's side; and what changed."""
    root = info.root
    if list(recorded.get("classes", [])) != list(info.classes):
        raise DatasetError(f"The classes of {root} changed since the run planned its split "
                           f"({recorded.get('classes')} then, {info.classes} now): its plan cannot be replayed. "
                           "Start a new run on the dataset as it is, or point the job at a dataset with the run's "
                           "classes (--data).")
    now = {_rel(s.path, root): s for s in info.samples}
    try:
        excluded_now, _ = excluded_names(info, (recorded.get("inputs") or {}).get("exclude") or "auto")
    except ConfigError:  # the --exclude FILE the run was given is gone: nothing more is excluded
        excluded_now = set()
    changes = PlanChanges()
    sides: dict[str, list[Sample]] = {"train": [], "val": []}
    planned = set()
    for side in ("train", "val"):
        for rel, label in recorded[side]:
            planned.add(rel)
            s = now.get(rel)
            if s is None:
                changes.gone.append(rel)
            elif s.label != label:
                changes.relabelled.append(rel)
            elif excluded_now and str(Path(s.path).resolve()) in excluded_now:
                changes.excluded.append(rel)
            else:
                sides[side].append(s)
    changes.unknown = sorted(rel for rel, s in now.items() if rel not in planned
                             and str(Path(s.path).resolve()) not in excluded_now)
    return sides["train"], sides["val"], changes


def plan_for_run(run_dir: str | os.PathLike, record, info: DatasetInfo, replan: bool = False,
                 log=None) -> tuple[list[Sample], list[Sample], str]:
    """(train, validation, how) for a job on a recorded run: its recorded plan replayed on `info` (what changed
    is logged, with the way out), or with `replan` (or for a run from before plans were recorded) planned
    again from the run's recorded inputs. `record`: the run's RunRecord; `log(text, level)`."""
    say = log or (lambda text, level="info": None)
    recorded = None if replan else load_plan(run_dir)
    if recorded is not None:
        train, val, changes = replay_plan(info, recorded)
        if changes:
            say(f"the dataset changed since the run planned its split: {changes.describe()}. Using the recorded "
                "plan for the files still there; pass --replan to plan the split again from the dataset as it "
                "is now", "warning")
        return train, val, "recorded"
    plan = plan_split(info, record.val_fraction, record.seed, record.get("exclude") or "auto",
                      record.get("group_duplicates") or "auto")
    for level, note in plan.notes:
        say(note, level)
    how = "replanned" if replan else "planned (the run recorded no plan)"
    say(f"split {how}: {len(plan.train)} train / {len(plan.val)} validation", "info")
    return plan.train, plan.val, how
