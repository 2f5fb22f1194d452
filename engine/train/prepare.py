"""Preparing a training run: validate the config, seed, scan (rank 0 alone under torchrun) and split the
dataset, build the model, create the run directory (or reuse a resumed one's) and write config.json.
`prepare(config, ctx)` returns a `Prepared` that the probe and the fine-tuning modes train from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.core.checkpoints import versions
from engine.core.errors import RunError
from engine.core.events import JobStarted, null_sink
from engine.core.jobs import JobContext
from engine.core.records import Preprocessing, RunRecord
from engine.core.runs import create_run_dir, dataset_label, load_config, runs_root, save_config
from engine.data.images import image_identity
from engine.data.layouts import DatasetInfo, Sample
from engine.data.scan import scan_dataset
from engine.data.splits import SplitPlan, plan_digest, plan_for_run, plan_record, plan_split, save_plan
from engine.models.build import build_classifier
from engine.models.classifier import Classifier
from engine.models.registry import feature_dim, get_spec, weights_identity, weights_status
from engine.models.spec import resolve_img_size
from engine.runtime import distributed as D
from engine.runtime.precision import use_channels_last
from engine.runtime.seeding import seed_everything
from engine.train.config import TrainConfig


@dataclass
class Prepared:
    """What every mode needs before its loop: data, split, run directory, config record, and the model —
    built on first use, so a probe whose features are all cached never loads the backbone."""

    config: TrainConfig
    info: DatasetInfo
    train: list[Sample]
    val: list[Sample]
    weights_identity: str
    prep: Preprocessing
    device: torch.device
    run_dir: Path
    record: dict  # config.json as written (checkpoints carry it too)
    ctx: JobContext
    dist: D.DistInfo = D.SINGLE
    resumed: bool = False  # continuing a recorded run: replay its decisions, decide nothing anew
    _model: Classifier | None = None

    @property
    def model(self) -> Classifier:
        if self._model is None:
            # a random backbone is drawn from the run's seed: the same network every time it is built
            self._model, identity = build_classifier(self.config.backbone, len(self.info.classes),
                                                     self.config.weights, self.ctx, seed=self.config.seed)
            assert identity == self.weights_identity, (identity, self.weights_identity)
        return self._model


def dataset_fingerprint(info: DatasetInfo) -> str:
    """A hash of every used file's (relative path, size, mtime): tells whether a run's data changed."""
    import hashlib

    h = hashlib.sha256()
    for s in sorted(info.samples, key=lambda s: s.path):
        ident = image_identity(s.path).split("|", 1)[1]
        h.update(f"{Path(s.path).relative_to(info.root)}|{ident}\n".encode())
    return h.hexdigest()[:32]


def check_config(config: TrainConfig) -> TrainConfig:
    """The config's own checks (TrainConfig.validate, no torch), then its backbone's name, which only the
    registry knows: an unknown one is a ConfigError with the allowed names, before any work."""
    config.validate()
    get_spec(config.backbone)
    return config


def prepare(config: TrainConfig, ctx: JobContext, resume_dir: Path | None = None, kind: str = "train",
            planned: tuple[DatasetInfo, SplitPlan] | None = None, replan: bool = False) -> Prepared:
    """Validate, seed, scan and split; create the run directory (or reuse `resume_dir`'s), config.json and
    split.json (the plan every later job on the run replays).

    `kind` names the job ("train", "lr-find"); an lr-find directory ends in -lr-find instead of the mode.
    `planned`: the scan and plan a search already made (auto searches on the very plan it then trains on).
    A resumed run replays its recorded plan, or with `replan` plans again from the dataset as it is now."""
    check_config(config)
    record_old = load_config(resume_dir) if resume_dir is not None else None
    seed = seed_everything(config.seed)
    config.seed = seed
    dist, device, device_name, why = D.join(config.device)
    if not dist.is_main:  # rank 0 alone logs and writes
        ctx = JobContext(null_sink, ctx.control)
    ctx.log(f"device: {device_name} ({why})")
    if dist.enabled:
        ctx.log(f"distributed: {dist.world_size} processes (torchrun), global batch "
                f"{config.batch_size * dist.world_size} = {config.batch_size} per process")

    info = planned[0] if planned is not None else scan_once(config.dataset, dist, ctx)
    ctx.log(f"dataset: {info.root} — layout {info.layout}, {len(info.samples)} images, {len(info.classes)} classes")
    if planned is None:  # a search already said these
        for note in info.notes:
            ctx.log(note, "warning")
        for bad in info.unreadable[:20]:
            ctx.log(f"skipped {bad.path}: {bad.reason}", "warning")
        if len(info.unreadable) > 20:
            ctx.log(f"… and {len(info.unreadable) - 20} more unusable files (see `tlbench scan`)", "warning")
    split = split_once(config, info, dist, ctx, resume_dir, record_old, planned, replan)
    train, val = split.train, split.val
    # the run's dataset is what it trains on: later steps (fingerprint, counts) see it
    kept = {s.path for s in train + val}
    info.samples = [s for s in info.samples if s.path in kept]
    ctx.log(f"split: {len(train)} train / {len(val)} validation (seed {seed})")

    spec = get_spec(config.backbone)
    img_size = resolve_img_size(config.img_size, spec.input_size, info.median_side, spec.min_input,
                                spec.fixed_input)
    prep = spec.preprocessing(img_size)
    identity = weights_identity(spec, config.weights, seed=seed)
    ctx.log(f"backbone: {config.backbone} ({identity}), input {img_size} px")
    if config.weights is None:  # where the pretrained weights come from, before anything is extracted or trained
        status = weights_status(spec)
        ctx.log(f"weights: {status.status}, {status.detail}" + (f" ({status.path})" if status.path else ""))

    fingerprint = dataset_fingerprint(info) if dist.is_main else None  # rank 0 alone records and compares it
    # The precision is decided where the network is at hand (fine-tuning measures the backbone's own forward
    # pass, the probe its extraction) and recorded there, before the first step; a resumed run keeps its own.
    resolved = {}
    if config.mode not in ("probe", "auto"):
        resolved = {"channels_last_resolved": use_channels_last(device, config.channels_last)}
    if resume_dir is not None and record_old is not None:  # (one is read from the other)
        run_dir = resume_dir
        if list(info.classes) != list(record_old.classes):
            raise RunError(f"Cannot resume {run_dir}: the dataset's classes changed since the run started "
                           f"({list(record_old.classes)} then, {info.classes} now). Start a new run.")
        if dist.is_main and fingerprint != record_old.dataset_fingerprint:
            ctx.log("the dataset's files changed since the run started (added, removed, or rewritten); the "
                    "run's recorded split is used for the files still there", "warning")
        # what the run decided stays decided (precision_resolved, channels_last_resolved): a resume on
        # another machine, or after the remembered choice changed, replays it
        record = {**resolved, **record_old.to_dict(),
                  "resumed": [*record_old.resumed, time.strftime("%Y-%m-%dT%H:%M:%S%z")],
                  "device_resolved": device_name, "workers": config.workers}
    else:
        created = None
        if dist.is_main:
            created = str(create_run_dir(runs_root(config.runs_dir), dataset_label(info.root),
                                         config.backbone,
                                         config.mode if kind == "train" else kind))
        created = D.broadcast(dist, created)
        assert created is not None  # rank 0 sends the directory it created (or failed, and so did we all)
        run_dir = Path(created)
        record = {
            **config.to_dict(),
            "kind": kind,
            "dataset": str(info.root),
            "img_size": img_size,
            "seed": seed,
            "device_resolved": device_name,
            **resolved,
            "world_size": dist.world_size,
            "dataset_layout": info.layout,
            "dataset_fingerprint": fingerprint,
            "classes": info.classes,
            "train_images": len(train),
            "val_images": len(val),
            "skipped_images": len(info.unreadable),
            "excluded_images": split.excluded,
            "duplicates_moved": split.moved,
            "split_digest": split.digest,
            "weights_identity": identity,
            "preprocessing": prep.to_dict(),
            "feature_dim": feature_dim(config.backbone),
            "versions": versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    if split.record is not None and resume_dir is not None:  # replanned: the run's plan is the new one now
        record["split_digest"] = split.digest
        record["replanned"] = [*record.get("replanned", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")]
    if dist.is_main:
        if split.record is not None:
            save_plan(run_dir, split.record)
        save_config(run_dir, record)
    ctx.emit(JobStarted(kind, f"{config.mode} {config.backbone} on {info.name}", str(run_dir)))
    ctx.log(f"run directory: {run_dir}")
    ctx.result["run_dir"] = str(run_dir)
    return Prepared(config, info, train, val, identity, prep, device, run_dir, record, ctx, dist,
                    resumed=resume_dir is not None)


@dataclass
class Split:
    """The run's two lists, and what split.json records (None: the recorded plan stands as it is)."""

    train: list[Sample]
    val: list[Sample]
    record: dict | None
    digest: str
    excluded: int = 0
    moved: int = 0


def split_once(config: TrainConfig, info: DatasetInfo, dist: D.DistInfo, ctx: JobContext, resume_dir: Path | None,
               record_old: RunRecord | None, planned: tuple[DatasetInfo, SplitPlan] | None,
               replan: bool) -> Split:
    """The run's split, decided by rank 0 alone and sent to the others (like the scan): the exclude list and
    the audit live in each node's own cache, and ranks that planned from different caches would train on
    different lists, with different steps per epoch, until DDP's timeout."""
    found: Split | Exception | None = None
    if dist.is_main:
        try:
            found = _split(config, info, ctx, resume_dir, record_old, planned, replan)
        except Exception as err:  # noqa: BLE001 - every rank fails with it, none waits for a plan never sent
            found = err
    found = D.broadcast(dist, found)
    if isinstance(found, Exception):
        raise found
    assert found is not None  # rank 0 sends a split or the error it got
    return found


def _split(config: TrainConfig, info: DatasetInfo, ctx: JobContext, resume_dir: Path | None,
           record_old: RunRecord | None, planned: tuple[DatasetInfo, SplitPlan] | None, replan: bool) -> Split:
    assert config.seed is not None  # prepare() drew it
    if resume_dir is not None and record_old is not None and not replan:
        train, val, _ = plan_for_run(resume_dir, record_old, info, log=ctx.log)
        return Split(train, val, None, plan_digest(train, val, info.root),
                     int(record_old.get("excluded_images") or 0), int(record_old.get("duplicates_moved") or 0))
    plan = planned[1] if planned is not None else plan_split(info, config.val_fraction, config.seed,
                                                             config.exclude, config.group_duplicates)
    for level, note in plan.notes:
        ctx.log(note, level)
    record = plan_record(plan, info, config.val_fraction, config.seed, config.exclude, config.group_duplicates)
    return Split(plan.train, plan.val, record, record["digest"], plan.excluded, plan.moved)


def scan_once(dataset: str, dist: D.DistInfo, ctx: JobContext) -> DatasetInfo:
    """The dataset scan, done by rank 0 alone under torchrun and sent to the others.

    Rather than each rank reading the scan cache rank 0 wrote: the ranks must agree on the very list of files
    (the sampler's indices point into it), and a file added, removed or broken between two ranks' scans
    would make them disagree silently. One scan, broadcast, cannot; and the other ranks do not hit the
    dataset's filesystem (a network share on a cluster) with one stat per file each."""
    found: DatasetInfo | Exception | None = None
    if dist.is_main:
        try:
            found = scan_dataset(dataset, ctx=ctx)
        except Exception as err:  # noqa: BLE001 - every rank fails with it, none waits for a list never sent
            found = err
    found = D.broadcast(dist, found)
    if isinstance(found, Exception):
        raise found
    assert found is not None  # rank 0 sends a scan or the error it got
    return found
