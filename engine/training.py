"""Training jobs. Probe mode: frozen backbone, features extracted once and cached, a linear head on top.
The fine-tuning modes (head, partial, full) are in engine.finetune.

`train(config, ctx)` is the job function (run it with engine.jobs.run_job): it scans the dataset, creates
the run directory, trains, writes the evaluation report, and returns the result summary that
`tlbench train --json` prints. `resume(run_dir, ctx)` continues a stopped run from its last.pt.
Under torchrun (WORLD_SIZE > 1) every rank runs the job; rank 0 alone writes the run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine import distributed as D
from engine.backbones import build_classifier, feature_dim, get_spec
from engine.config import TrainConfig, resolve_img_size
from engine.datasets import DatasetInfo, Sample, scan_dataset, split_dataset
from engine.devices import device_type
from engine.errors import RunError
from engine.events import CheckpointSaved, EpochEnded, JobStarted, null_sink
from engine.features import cache_key, cached_features
from engine.images import image_identity
from engine.jobs import JobContext
from engine.models import Classifier
from engine.precision import autocast_dtype, precision_name, training_precision, use_channels_last
from engine.runs import (
    append_metrics,
    atomic_write_json,
    create_run_dir,
    load_checkpoint,
    load_config,
    resolve_run_dir,
    runs_root,
    save_checkpoint,
    save_config,
    versions,
)
from engine.seeding import seed_everything
from engine.weights import is_random, weights_identity


@dataclass
class Prepared:
    """What every mode needs before its loop: data, split, run directory, config record, and the model —
    built on first use, so a probe whose features are all cached never loads the backbone."""

    config: TrainConfig
    info: DatasetInfo
    train: list[Sample]
    val: list[Sample]
    weights_identity: str
    prep: dict
    device: torch.device
    run_dir: Path
    record: dict  # config.json
    ctx: JobContext
    dist: D.DistInfo = D.SINGLE
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


def prepare(config: TrainConfig, ctx: JobContext, resume_dir: Path | None = None, kind: str = "train") -> Prepared:
    """Validate, seed, scan and split; create the run directory (or reuse `resume_dir`'s) and config.json.

    `kind` names the job ("train", "lr-find"); an lr-find directory ends in -lr-find instead of the mode."""
    config.validate()
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

    info = scan_once(config.dataset, dist, ctx)
    ctx.log(f"dataset: {info.root} — layout {info.layout}, {len(info.samples)} images, {len(info.classes)} classes")
    for note in info.notes:
        ctx.log(note, "warning")
    for bad in info.unreadable[:20]:
        ctx.log(f"skipped {bad.path}: {bad.reason}", "warning")
    if len(info.unreadable) > 20:
        ctx.log(f"… and {len(info.unreadable) - 20} more unusable files (see `tlbench scan`)", "warning")
    train, val = split_dataset(info, config.val_fraction, seed)
    ctx.log(f"split: {len(train)} train / {len(val)} validation (seed {seed})")

    spec = get_spec(config.backbone)
    img_size = resolve_img_size(config.img_size, spec.input_size, info.median_side)
    prep = spec.preprocessing(img_size)
    identity = weights_identity(spec, config.weights, seed=seed)
    ctx.log(f"backbone: {config.backbone} ({identity}), input {img_size} px")

    fingerprint = dataset_fingerprint(info) if dist.is_main else None  # rank 0 alone records and compares it
    resolved = {}
    if config.mode != "probe":  # the probe's extraction is engine.features' own
        resolved = {"precision_resolved": precision_name(autocast_dtype(device, training_precision(
                        config.precision, config.amp))),
                    "channels_last_resolved": use_channels_last(device, config.channels_last)}
    if record_old is not None:
        run_dir = resume_dir
        if info.classes != record_old["classes"]:
            raise RunError(f"Cannot resume {run_dir}: the dataset's classes changed since the run started "
                           f"({record_old['classes']} then, {info.classes} now). Start a new run.")
        if dist.is_main and fingerprint != record_old.get("dataset_fingerprint"):
            ctx.log("the dataset's files changed since the run started: the split may differ", "warning")
        record = {**record_old, "resumed": [*record_old.get("resumed", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")],
                  "device_resolved": device_name, "workers": config.workers, **resolved}
    else:
        run_dir = None
        if dist.is_main:
            run_dir = create_run_dir(runs_root(config.runs_dir), info.name, config.backbone,
                                     config.mode if kind == "train" else kind)
        run_dir = Path(D.broadcast(dist, str(run_dir) if run_dir else None))
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
            "weights_identity": identity,
            "preprocessing": prep,
            "feature_dim": feature_dim(config.backbone),
            "versions": versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    if dist.is_main:
        save_config(run_dir, record)
    ctx.emit(JobStarted(kind, f"{config.mode} {config.backbone} on {info.name}", str(run_dir)))
    ctx.log(f"run directory: {run_dir}")
    ctx.result["run_dir"] = str(run_dir)
    return Prepared(config, info, train, val, identity, prep, device, run_dir, record, ctx, dist)


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
    return found


def improves(val_acc: float, val_loss: float, best: dict) -> bool:
    """Whether an epoch beats `best` ({"val_acc", "val_loss", "epoch"}): a higher validation accuracy, or the
    same with a lower loss — on a small validation set accuracy saturates (1.0) while the loss still says
    which model is better. The first epoch always does. Without validation numbers (NaN: no usable
    validation image) the latest epoch stands in, unless an earlier one was validated."""
    if not best.get("epoch"):
        return True
    if math.isnan(val_acc):
        return math.isnan(best["val_acc"])
    if math.isnan(best["val_acc"]) or val_acc > best["val_acc"]:
        return True
    return val_acc == best["val_acc"] and val_loss < best["val_loss"]


def evaluate_head(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean loss, accuracy) of a head on features."""
    if len(labels) == 0:
        return float("nan"), float("nan")
    with torch.inference_mode():
        logits = head(feats)
        loss = F.cross_entropy(logits, labels).item()
        acc = (logits.argmax(1) == labels).float().mean().item()
    return loss, acc


def save_probe_checkpoints(p: Prepared, best: dict, last: dict, ctx: JobContext) -> None:
    """best.pt and last.pt hold the head; with random weights the whole model (scope "full"), since no
    registry can give that backbone back (predict, eval and export then load exactly the network the
    features came from, whichever torch version they run on)."""
    common = {"config": p.record, "model_scope": "head", "classes": p.info.classes}
    if is_random(p.config.weights):
        backbone = {k: v for k, v in p.model.state_dict().items() if not k.startswith("head.")}
        best = {**best, "model": {**backbone, **{f"head.{k}": v for k, v in best["model"].items()}}}
        last = {**last, "model": {**backbone, **{f"head.{k}": v for k, v in last["model"].items()}}}
        common["model_scope"] = "full"
    save_checkpoint(p.run_dir / "best.pt", {**common, **best})
    save_checkpoint(p.run_dir / "last.pt", {**common, **last})
    ctx.emit(CheckpointSaved(str(p.run_dir / "best.pt"), best["epoch"], best=True))


def train_probe(p: Prepared, ctx: JobContext) -> dict:
    cfg = p.config
    key = cache_key(cfg.backbone, p.weights_identity, p.prep)
    samples = p.train + p.val
    feats, errors, stats = cached_features(
        lambda: p.model, key, p.info.root, [s.path for s in samples], p.device, cfg.batch_size, cfg.workers, ctx
    )
    for i, reason in sorted(errors.items()):
        ctx.log(f"skipped {samples[i].path}: {reason}", "warning")
    # the probe's head trains on the host, beside the cached features
    keep = torch.tensor([i not in errors for i in range(len(samples))], device="cpu")
    labels = torch.tensor([s.label for s in samples], device="cpu")
    is_train = torch.tensor([i < len(p.train) for i in range(len(samples))], device="cpu")
    xtr, ytr = feats[keep & is_train], labels[keep & is_train]
    xva, yva = feats[keep & ~is_train], labels[keep & ~is_train]

    generator = torch.Generator().manual_seed(cfg.seed)
    head = nn.Linear(p.record["feature_dim"], len(p.info.classes), device="cpu")  # beside the features
    nn.init.normal_(head.weight, std=0.01, generator=generator)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, -(-len(ytr) // cfg.batch_size))
    history: list[dict] = []
    best_of = {"val_acc": math.nan, "val_loss": math.inf, "epoch": 0}
    best_acc, best_epoch = math.nan, 0
    best: dict = {}
    last: dict = {}
    best_state = {k: v.clone() for k, v in head.state_dict().items()}
    start, paused_at_start = time.perf_counter(), ctx.paused_seconds
    for epoch in range(1, cfg.epochs + 1):
        t0, paused0 = time.perf_counter(), ctx.paused_seconds
        head.train()
        order = torch.randperm(len(ytr), generator=generator, device="cpu")
        total_loss, correct = 0.0, 0
        for step in range(steps):
            if ctx.stopped and history:
                save_probe_checkpoints(p, best, last, ctx)
            ctx.check()
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            logits = head(xtr[idx])
            loss = F.cross_entropy(logits, ytr[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)  # the head trains on the host: .item() costs nothing
            correct += (logits.argmax(1) == ytr[idx]).sum().item()
        head.eval()
        val_loss, val_acc = evaluate_head(head, xva, yva)
        paused = ctx.paused_seconds - paused0
        row = {"epoch": epoch, "train_loss": total_loss / max(1, len(ytr)), "train_acc": correct / max(1, len(ytr)),
               "val_loss": val_loss, "val_acc": val_acc, "lr": cfg.lr, "seconds": time.perf_counter() - t0 - paused,
               "paused_seconds": round(paused, 3)}
        history.append(row)
        append_metrics(p.run_dir, row)
        if improves(val_acc, val_loss, best_of):
            best_of = {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch}
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        best_acc, best_epoch = best_of["val_acc"], best_of["epoch"]
        ctx.emit(EpochEnded(epoch, cfg.epochs, {k: v for k, v in row.items() if k not in ("epoch", "paused_seconds")},
                            row["seconds"]))
        ctx.result.update({"epochs": epoch, "val_acc": val_acc, "best_val_acc": best_acc})
        last = {"epoch": epoch, "model": head.state_dict(), "optimizer": optimizer.state_dict(), "metrics": row}
        best = {"epoch": best_epoch, "model": best_state, "metrics": history[best_epoch - 1]}
        # A probe epoch takes milliseconds: checkpoints are written when the loop ends (or is stopped),
        # not every epoch.
        if epoch == cfg.epochs:
            save_probe_checkpoints(p, best, last, ctx)

    # the evaluation report of best.pt, from the cached features: no backbone pass
    from engine.evaluation import build_report, save_report

    head.load_state_dict(best_state)
    with torch.inference_mode():
        val_logits = head(xva)
    val_paths = [samples[i].path for i in range(len(samples)) if keep[i] and not is_train[i]]
    report = build_report(val_logits, yva, val_paths, p.info.classes)
    save_report(p.run_dir, report, p.prep)

    return {
        "val_acc": history[-1]["val_acc"],
        "best_val_acc": best_acc,
        "best_epoch": best_epoch,
        "epochs": cfg.epochs,
        "train_images": int(len(ytr)),
        "val_images": int(len(yva)),
        "skipped_images": len(p.info.unreadable) + len(errors),
        **stats,
        "train_seconds": round(time.perf_counter() - start - (ctx.paused_seconds - paused_at_start), 3),
        "paused_seconds": round(ctx.paused_seconds - paused_at_start, 3),
        "report": str(p.run_dir / "report.json"),
        "top5": report["top5"],
    }


def train(config: TrainConfig, ctx: JobContext) -> dict:
    """The training job: prepare, run the mode's loop, write the report, return the summary."""
    started = time.perf_counter()
    p = prepare(config, ctx)
    try:
        if config.mode == "probe":
            if p.dist.enabled:
                raise RunError("--mode probe trains a linear head on cached features in seconds: run it "
                               "without torchrun (torchrun is for the head, partial and full modes).")
            result = train_probe(p, ctx)
        else:  # the fine-tuning modes live in engine.finetune
            from engine.finetune import train_finetune

            result = train_finetune(p, ctx)
        return finish(p, result, started, ctx.paused_seconds)
    finally:
        D.teardown(p.dist)


def finish(p: Prepared, result: dict, started: float, paused: float = 0.0) -> dict:
    """summary.json; `seconds` is the job's time without its pauses (`paused_seconds`)."""
    summary = {"run_dir": str(p.run_dir), "classes": p.info.classes, **result,
               "seconds": round(time.perf_counter() - started - paused, 3)}
    if p.dist.is_main:
        atomic_write_json(p.run_dir / "summary.json", summary)
    return summary


def resume(run_dir: str | Path, ctx: JobContext, device: str | None = None, workers: int | None = None,
           runs_dir: str | None = None) -> dict:
    """Continue a stopped fine-tuning run from its last.pt, with the settings it recorded.

    On a CPU with the same seed the result equals the uninterrupted run's (tests/test_resume.py).
    """
    started = time.perf_counter()
    run_dir = resolve_run_dir(run_dir, runs_root(runs_dir))
    record = load_config(run_dir)
    if (run_dir / "summary.json").exists():
        raise RunError(f"{run_dir} already finished ({len(read_metrics_safe(run_dir))} epochs, see "
                       "summary.json): nothing to resume. Start a new run, e.g. with more --epochs.")
    if record.get("mode") == "probe":
        raise RunError(f"{run_dir} is a probe run; a probe takes seconds on cached features. "
                       "Start it again instead of resuming.")
    if not (run_dir / "last.pt").exists():
        raise RunError(f"{run_dir} has no last.pt: it stopped before finishing a step. Start a new run.")
    config = TrainConfig.from_dict(record)
    if device is not None:
        config.device = device
    if workers is not None:
        config.workers = workers
    ckpt = load_checkpoint(run_dir / "last.pt")
    if int(ckpt["epoch"]) >= (config.epochs or 0):
        raise RunError(f"{run_dir} already completed its {config.epochs} epochs. Start a new run to train longer.")
    if "precision" not in record and ckpt.get("scaler") and device_type(config.device) == "cuda":
        config.precision = "fp16"  # recorded before --precision existed: its AMP was fp16 (it kept a scaler)
    p = prepare(config, ctx, resume_dir=run_dir)
    try:
        from engine.finetune import train_finetune

        return finish(p, train_finetune(p, ctx, resume=ckpt), started, ctx.paused_seconds)
    finally:
        D.teardown(p.dist)


def read_metrics_safe(run_dir: Path) -> list[dict]:
    from engine.runs import read_metrics

    try:
        return read_metrics(run_dir)
    except ValueError:
        return []
