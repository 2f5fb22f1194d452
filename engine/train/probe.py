"""Probe mode: a frozen backbone whose pooled features are extracted once (and cached, engine.features.cache),
and a linear head trained on them in mini-batches on the job's device: seconds per run. Ties on validation accuracy are broken on
the validation loss, so best.pt is never an under-trained early epoch.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from engine.core.checkpoints import save_checkpoint
from engine.core.errors import RunError
from engine.core.events import CheckpointSaved, EpochEnded
from engine.core.jobs import JobContext
from engine.core.runs import append_metrics, save_config
from engine.evaluate.evaluation import build_report, save_report
from engine.features.cache import cache_key, cached_features
from engine.features.views import FLIP, view_features
from engine.models.weights import is_random
from engine.runtime.precision import training_precision
from engine.train.prepare import Prepared


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


def record_precision(p: Prepared, name: str, why: str) -> None:
    """config.json says in which precision the run's features were computed (and why): eval, predict and explain
    replay it (engine.models.loading)."""
    p.ctx.log(f"precision: {name} ({why})")
    p.record.update({"precision_resolved": name, "precision_reason": why})
    if p.dist.is_main:
        save_config(p.run_dir, p.record)


def train_probe(p: Prepared, ctx: JobContext) -> dict:
    cfg = p.config
    key = cache_key(cfg.backbone, p.weights_identity, p.prep)
    samples = p.train + p.val
    feats, errors, stats = cached_features(
        lambda: p.model, key, p.info.root, [s.path for s in samples], p.device, cfg.batch_size, cfg.workers, ctx,
        precision=training_precision(cfg.precision, cfg.amp),  # an explicit --precision holds for extraction too
    )
    record_precision(p, stats["extract_precision"], stats["extract_precision_reason"])
    for i, reason in sorted(errors.items()):
        ctx.log(f"skipped {samples[i].path}: {reason}", "warning")
    # the probe's head trains on the host, beside the cached features
    keep = torch.tensor([i not in errors for i in range(len(samples))], device="cpu")
    labels = torch.tensor([s.label for s in samples], device="cpu")
    is_train = torch.tensor([i < len(p.train) for i in range(len(samples))], device="cpu")
    xtr, ytr = feats[keep & is_train], labels[keep & is_train]
    xva, yva = feats[keep & ~is_train], labels[keep & ~is_train]
    if cfg.tta:  # the validation images judged on their features averaged with their mirror images' (linear head)
        flipped, flip_errors, _ = view_features(cfg.backbone, p.prep.crop_size, [FLIP], str(p.info.root),
                                                [s.path for s in p.val], p.device, weights=cfg.weights,
                                                seed=cfg.seed or 0, batch_size=cfg.batch_size, workers=cfg.workers,
                                                ctx=ctx, precision=stats["extract_precision"])
        val_keep = keep[len(p.train):]
        ok = val_keep.clone()
        ok[list(flip_errors)] = False
        if not bool(ok.equal(val_keep)):
            raise RunError("A validation image decoded for its center crop but not for its mirror image; "
                           "run without --tta and see `tlbench scan`.")
        xva = (xva + flipped[:, 0][val_keep]) / 2

    epochs, seed = cfg.epochs, cfg.seed
    assert epochs is not None and seed is not None  # prepare() validated the config and drew the seed
    generator = torch.Generator().manual_seed(seed)
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
    for epoch in range(1, epochs + 1):
        t0, paused0 = time.perf_counter(), ctx.paused_seconds
        head.train()
        order = torch.randperm(len(ytr), generator=generator, device="cpu")
        total_loss, correct = 0.0, 0
        for step in range(steps):
            if ctx.stopped and history:
                save_probe_checkpoints(p, best, last, ctx)
            ctx.check()
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            logits = head(F.dropout(xtr[idx], cfg.dropout, training=True) if cfg.dropout else xtr[idx])
            loss = F.cross_entropy(logits, ytr[idx], label_smoothing=cfg.label_smoothing)
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
        ctx.emit(EpochEnded(epoch, epochs, {k: v for k, v in row.items() if k not in ("epoch", "paused_seconds")},
                            row["seconds"]))
        ctx.result.update({"epochs": epoch, "val_acc": val_acc, "best_val_acc": best_acc})
        last = {"epoch": epoch, "model": head.state_dict(), "optimizer": optimizer.state_dict(), "metrics": row}
        best = {"epoch": best_epoch, "model": best_state, "metrics": history[best_epoch - 1]}
        # A probe epoch takes milliseconds: checkpoints are written when the loop ends (or is stopped),
        # not every epoch.
        if epoch == epochs:
            save_probe_checkpoints(p, best, last, ctx)

    # the evaluation report of best.pt, from the cached features: no backbone pass

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

