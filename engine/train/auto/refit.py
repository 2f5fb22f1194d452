"""The final model of `--mode auto`: the chosen recipes refitted on every training photo, written as a run.

The search scored recipes on k-fold splits of the training photos; the model the user saves and exports is
fitted on all of them (no photo kept back to validate it: the cross-validation already estimated how it does).
Each member's head is solved on every training photo's features (cached by the search: no backbone pass),
then the model is one module (engine.models.ensemble) written as best.pt / last.pt, from which eval, predict,
explain, export and resume rebuild it (engine.models.loading).

Its report: with a held-out split (--holdout, or the dataset's own val/ folder) the photos the model never saw,
scored by the module's arithmetic on their cached features; without one, the search's out-of-fold predictions of
the winner (each training photo predicted by heads that never saw it), labelled "cross-validated".
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from engine.core.checkpoints import save_checkpoint
from engine.core.events import CheckpointSaved, EpochEnded
from engine.core.jobs import JobContext
from engine.core.records import Preprocessing
from engine.core.runs import append_metrics
from engine.data.layouts import Sample
from engine.evaluate.crossval import fit_linear, one_cpu_thread
from engine.evaluate.evaluation import build_report, save_report
from engine.features.views import view_features
from engine.models.ensemble import build_auto_model, heads_state, load_heads, skeleton
from engine.models.weights import is_random
from engine.train.auto.recipes import Recipe
from engine.train.prepare import Prepared

CV_SPLIT = "cross-validated"  # report.json's split when the run keeps no held-out photos


def member_recipes(structure: dict) -> list[tuple[Recipe, float]]:
    return [(Recipe.from_settings(m["recipe"]), float(m["weight"])) for m in structure["members"]]


def recipe_features(p: Prepared, r: Recipe, samples: list[Sample], views: list[str], precision: str,
                    ctx: JobContext) -> tuple[torch.Tensor, dict[int, str]]:
    """[N, V, D] of `samples` for `views`, `r`'s backbones side by side, through the feature cache."""
    cfg = p.config
    feats, errors = [], {}
    for b in r.backbones:
        f, err, _ = view_features(b, r.img_size, views, str(p.info.root), [s.path for s in samples], p.device,
                                  weights=cfg.weights, seed=cfg.seed or 0, batch_size=cfg.batch_size,
                                  workers=cfg.workers, ctx=ctx, precision=precision, prep=r.prep_for(b))
        feats.append(f)
        errors.update(err)
    return torch.cat(feats, 2), errors


def fit_heads(p: Prepared, members: list[tuple[Recipe, float]], precision: str,
              ctx: JobContext) -> tuple[list[torch.nn.Linear], list[int], dict]:
    """Each member's head solved on every usable training photo: (heads, the photos' indices, their training
    logits and labels for the log)."""
    n_classes = len(p.info.classes)
    heads, used = [], None
    stats: dict = {}
    for r, _ in members:
        feats, errors = recipe_features(p, r, p.train, r.views(), precision, ctx)
        for i, reason in sorted(errors.items()):
            ctx.log(f"skipped {p.train[i].path}: {reason}", "warning")
        keep = [i for i in range(len(p.train)) if i not in errors]
        used = keep if used is None else [i for i in used if i in set(keep)]
        rows = torch.as_tensor(keep, dtype=torch.long, device="cpu")
        y = torch.tensor([p.train[i].label for i in keep], dtype=torch.long, device="cpu")
        x = feats[rows, :len(r.test_views())].mean(1)
        if r.aug_views:  # every view of every photo is a training row
            fx, fy = feats[rows].reshape(-1, feats.shape[-1]), y.repeat_interleave(feats.shape[1])
        else:
            fx, fy = x, y
        with one_cpu_thread():  # the head's solves are small: one thread (engine.evaluate.crossval)
            head = fit_linear(fx, fy, n_classes, r.head(p.config))
        heads.append(head)
        stats.setdefault("logits", []).append((keep, head(x).detach()))
        stats["rows"] = stats.get("rows", 0) + len(fy)
    return heads, used or [], stats


def positions(keep: list[int], used: list[int]) -> list[int]:
    """Where each of `used` sits in `keep`."""
    at = {i: j for j, i in enumerate(keep)}
    return [at[i] for i in used]


def combine(logits: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """What engine.models.ensemble.Ensemble returns, from its members' logits."""
    if len(logits) == 1:
        return logits[0]
    probs = sum(w * lg.float().softmax(1) for lg, w in zip(logits, weights))
    assert isinstance(probs, torch.Tensor)
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def holdout_logits(p: Prepared, members: list[tuple[Recipe, float]], heads: list[torch.nn.Linear],
                   precision: str, ctx: JobContext) -> tuple[torch.Tensor, list[int]]:
    """The held-out photos judged by the model (their test views' features, averaged, through each head)."""
    per_member, errors = [], {}
    for (r, _), head in zip(members, heads):
        feats, err = recipe_features(p, r, p.val, r.test_views(), precision, ctx)
        errors.update(err)
        with torch.no_grad():
            per_member.append(head(feats.mean(1)))
    keep = [i for i in range(len(p.val)) if i not in errors]
    for i, reason in sorted(errors.items()):
        ctx.log(f"skipped {p.val[i].path}: {reason}", "warning")
    rows = torch.as_tensor(keep, dtype=torch.long, device="cpu")
    return combine([lg[rows] for lg in per_member], [w for _, w in members]), keep


def model_state(p: Prepared, structure: dict, heads: list[torch.nn.Linear]) -> tuple[dict, str]:
    """(state dict, scope): the heads and member weights; with a random backbone the whole model, since no
    registry can give that backbone back (as a probe on random weights saves it)."""
    if is_random(p.config.weights):
        model, _ = build_auto_model(structure, len(p.info.classes), "random", p.config.seed)
        load_heads(model, heads_state(skeleton(structure, heads)))
        return {k: v.detach().clone() for k, v in model.state_dict().items()}, "full"
    return heads_state(skeleton(structure, heads)), "heads"


def refit(p: Prepared, structure: dict, precision: str, ctx: JobContext) -> dict:
    """Fit the recorded members on every training photo, write the checkpoints, the held-out report if there
    is a held-out split, metrics.jsonl; returns the run's summary."""
    t0 = time.perf_counter()
    members = member_recipes(structure)
    heads, used, stats = fit_heads(p, members, precision, ctx)
    ctx.log(f"auto: refitted on all {len(used)} training photos ({stats['rows']} rows): the saved model saw "
            "every one")
    y = torch.tensor([p.train[i].label for i in used], dtype=torch.long, device="cpu")
    train_logits = combine([lg[positions(k, used)] for k, lg in stats["logits"]], [w for _, w in members])
    held = bool(p.val)
    if held:
        val_logits, kept = holdout_logits(p, members, heads, precision, ctx)
        yva = torch.tensor([p.val[i].label for i in kept], dtype=torch.long, device="cpu")
        val_acc = float((val_logits.argmax(1) == yva).float().mean()) if kept else math.nan
        val_loss = float(F.cross_entropy(val_logits, yva)) if kept else math.nan
        report = build_report(val_logits, yva, [p.val[i].path for i in kept], p.info.classes)
        report["estimate"] = {"kind": "held-out", "note": f"{len(kept)} photos held out of the search and of "
                              "the final fit (--holdout, or the dataset's val/ folder)"}
        save_report(p.run_dir, report, Preprocessing.from_dict(p.record["preprocessing"]))
    else:
        cv = p.record["auto"]
        val_acc, val_loss, kept = float(cv["cv_accuracy"]), math.nan, []
    secs = time.perf_counter() - t0
    row = {"epoch": 1, "train_loss": float(F.cross_entropy(train_logits, y)),
           "train_acc": float((train_logits.argmax(1) == y).float().mean()), "val_loss": val_loss,
           "val_acc": val_acc, "val_source": "held-out" if held else CV_SPLIT, "lr": None, "seconds": secs,
           "paused_seconds": 0.0}
    append_metrics(p.run_dir, row)
    ctx.emit(EpochEnded(1, 1, {k: v for k, v in row.items() if k not in ("epoch", "paused_seconds", "val_source")},
                        secs))
    state, scope = model_state(p, structure, heads)
    common = {"config": p.record, "model_scope": scope, "classes": p.info.classes, "epoch": 1, "model": state,
              "metrics": row}
    save_checkpoint(p.run_dir / "best.pt", common)
    save_checkpoint(p.run_dir / "last.pt", {**common, "optimizer": {}})
    ctx.emit(CheckpointSaved(str(p.run_dir / "best.pt"), 1, best=True))
    ctx.result.update({"epochs": 1, "val_acc": val_acc, "best_val_acc": val_acc})
    source = (f"held-out accuracy on {len(kept)} photos the model never saw" if held else
              "cross-validated estimate from the search (no held-out photos: the model was fitted on all of them)")
    return {"val_acc": val_acc, "best_val_acc": val_acc, "best_epoch": 1, "epochs": 1, "accuracy_source": source,
            "cv_accuracy": p.record["auto"]["cv_accuracy"], "holdout_accuracy": val_acc if held else None,
            "train_images": len(used), "val_images": len(kept), "refit_rows": stats["rows"],
            "skipped_images": len(p.info.unreadable) + len(p.train) - len(used),
            "recipe": p.record["auto"]["winner"], "train_seconds": round(secs, 3),
            "report": str(p.run_dir / "report.json")}
