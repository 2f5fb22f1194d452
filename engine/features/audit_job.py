"""`audit_job(params, ctx)`: look for a dataset's own mistakes — likely wrong labels, duplicates (leaking across
the train/validation split or carrying different labels), outliers, class imbalance — without touching it.

It reads the dataset (scan, the bytes of same-size files for exact duplicates) and writes only the audit:
audit.json in a new run directory and a copy in the dataset's tlbench state (engine.data.exclude), which
the workbench's Audit view reads. Features come from the probe's cache (engine.features.candidates), so an
audit after training costs no backbone pass; the out-of-fold probabilities come from the one
cross-validation machinery (engine.evaluate.crossval).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from engine.core.checks import check_number, check_whole
from engine.core.errors import ConfigError
from engine.core.events import JobStarted
from engine.core.files import atomic_write_json
from engine.core.jobs import JobContext
from engine.core.runs import create_run_dir, dataset_label, runs_root
from engine.data.exclude import exclude_file, save_audit
from engine.data.scan import scan_dataset, split_dataset
from engine.data.splits import sample_groups
from engine.evaluate import audit as A
from engine.evaluate.crossval import cross_validate_repeated, repeated_folds
from engine.features.candidates import backbone_features
from engine.models.registry import get_spec
from engine.models.spec import DEFAULT_BACKBONE, resolve_img_size
from engine.runtime.devices import describe_device


@dataclass
class AuditParams:
    dataset: str
    backbone: str = DEFAULT_BACKBONE
    folds: int = 5
    seed: int = 0  # the folds', and the split's (as `tlbench train`'s default --seed)
    val_fraction: float = 0.2  # the split whose leakage is checked (train's default)
    similarity: float = A.NEAR_DUPLICATE
    img_size: int | None = None  # default: what `tlbench train` would use, so the probe's cache is shared
    weights: str | None = None
    device: str = "auto"
    workers: int | None = None
    runs_dir: str | None = None

    def validate(self) -> AuditParams:
        get_spec(self.backbone)  # raises with the allowed names
        check_whole("--folds", self.folds, 2, 50, fix="use 2 to 50 folds, e.g. 5")
        check_number("--similarity", self.similarity, 0, 1, above=True,
                     fix="use a cosine similarity between 0 and 1, e.g. 0.9")
        if not self.dataset:
            raise ConfigError("No dataset given: pass a dataset folder (see `tlbench scan`).")
        return self


REPEATS = 3  # sets of folds the out-of-fold probabilities are averaged over


def content_hashes(paths: list[str], ctx: JobContext | None = None) -> list[str | None]:
    """sha256 of each file whose size another file shares (None for the rest: a unique size has no exact
    twin), read in 1 MB chunks. An unreadable file gets None."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(paths):
        try:
            by_size[os.stat(p).st_size].append(i)
        except OSError:
            continue
    out: list[str | None] = [None] * len(paths)
    for group in by_size.values():
        if len(group) < 2:
            continue
        for i in group:
            h = hashlib.sha256()
            try:
                with open(paths[i], "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):  # noqa: B023 - used at once
                        h.update(chunk)
            except OSError:
                continue
            out[i] = h.hexdigest()
        if ctx is not None:
            ctx.check()
    return out


def audit_job(params: AuditParams, ctx: JobContext) -> dict:
    params.validate()
    t0 = time.perf_counter()
    info = scan_dataset(params.dataset, ctx=ctx)
    ctx.emit(JobStarted("audit", f"audit {info.name} with {params.backbone}", str(info.root)))
    train, val = split_dataset(info, params.val_fraction, params.seed)
    val_paths = {s.path for s in val}
    samples = sorted(train + val, key=lambda s: s.path)
    paths = [s.path for s in samples]
    spec = get_spec(params.backbone)
    img_size = resolve_img_size(params.img_size, spec.input_size, info.median_side, spec.min_input, spec.fixed_input)
    device = torch.device(describe_device(params.device)[0])
    feats, errors, stats = backbone_features(params.backbone, str(info.root), paths, device,
                                             prep=spec.preprocessing(img_size), weights=params.weights,
                                             seed=params.seed, workers=params.workers, ctx=ctx)
    keep = [i for i in range(len(paths)) if i not in errors]
    paths = [paths[i] for i in keep]
    feats = feats[torch.as_tensor(keep, dtype=torch.long, device="cpu")]
    labels = np.array([samples[i].label for i in keep], dtype=np.int64)
    is_val = np.array([p in val_paths for p in paths], dtype=bool)
    classes = list(info.classes)

    hashes = content_hashes(paths, ctx)
    duplicates = A.duplicate_groups(feats, hashes, labels, is_val, paths, classes, params.similarity)
    leaks = sum(d["across_split"] for d in duplicates)
    ctx.log(f"duplicate groups: {len(duplicates)} ({leaks} across the train/validation split)")
    # every file is scored, marked ones too (the Audit view shows them, to unmark); the copies of one duplicate
    # group share a fold, so a copy's label never vouches for its twin's (the folds auto and compare use)
    ctx.log(f"{len(paths)} images, {len(classes)} classes: {params.folds}-fold out-of-fold probabilities")
    # repeated: one set of folds decides by chance which images train together, and on a small dataset that
    # moved a planted error's probability across cleanlab's threshold; averaged over REPEATS sets it holds
    fold_sets = repeated_folds(labels, params.folds, params.seed,
                               sample_groups(info.root, paths, {"duplicates": duplicates}), REPEATS)
    cv = cross_validate_repeated(feats, torch.as_tensor(labels, device="cpu"), len(classes), fold_sets,
                                 check=ctx.check)
    probs = cv.oof_probs.numpy()
    issues = A.label_issues(labels, probs, paths, classes)
    ctx.log(f"label issues: {len(issues)} (cross-validated accuracy {cv.accuracy:.3f})")
    far = A.outliers(feats, labels, paths, len(classes))
    for o in far:
        o["nearest"] = classes[o["nearest"]]
    balance = A.imbalance(labels, classes)
    result = {
        "dataset": str(info.root),
        "backbone": params.backbone,
        "images": len(paths),
        "classes": classes,
        "label_issues": issues,
        "duplicates": duplicates,
        "outliers": far,
        "imbalance": balance,
        "cv_accuracy": round(cv.accuracy, 6),
        "folds": cv.folds,
        "similarity_threshold": params.similarity,
        "split": {"val_fraction": params.val_fraction, "seed": params.seed, "val_images": int(is_val.sum())},
        "leaking_groups": leaks,
        "skipped": {**{u.path: u.reason for u in info.unreadable}, **{samples[i].path: r for i, r in errors.items()}},
        "feature_cache": stats["feature_cache"],
        "exclude_file": str(exclude_file(info.root)),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    run_dir = create_run_dir(runs_root(params.runs_dir), dataset_label(info.root), params.backbone, "audit")
    atomic_write_json(run_dir / "audit.json", result)
    result["run_dir"] = str(run_dir)
    save_audit(info.root, result)
    ctx.log(f"audit written to {run_dir / 'audit.json'}")
    return result
