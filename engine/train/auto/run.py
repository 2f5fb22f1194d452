"""`tlbench train --mode auto` as a job: plan the split, search (engine.train.auto.search), write what was chosen
into the run, refit it on every training photo (engine.train.auto.refit).

The search order (engine.train.auto.recipes.STAGES), likely winners first, so a short budget still ends well:
the default probe (always scored: the baseline auto never falls below); each backbone whose weights are here at
the probe's size, strongest first; flip test-time augmentation on the best two; the best at a larger input and
the runner-up at the best's size; concatenations of the best two and three; the head's L2 grid and label
smoothing; augmented training views; ten-crop test-time augmentation; the head again on the new incumbent; then
the ensemble of the best recipes (engine.train.auto.ensemble). Fine-tuning is estimated, and left out with its
estimate: on the few hundred photos this mode is for, a frozen backbone's features are what pays on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.core.errors import RunError
from engine.core.files import atomic_write_json
from engine.core.jobs import JobContext
from engine.data.layouts import DatasetInfo
from engine.data.scan import scan_dataset
from engine.data.splits import SplitPlan, plan_split
from engine.evaluate.evaluation import build_report, save_report
from engine.features.views import ten_crop_offsets
from engine.models.ensemble import structure_of, views_of
from engine.models.registry import feature_dim, get_spec, weights_identity
from engine.runtime.devices import resolve_device
from engine.runtime.precision import training_precision
from engine.runtime.seeding import seed_everything
from engine.train.auto.ensemble import ensemble_candidate
from engine.train.auto.recipes import STAGES, default_probe
from engine.train.auto.refit import CV_SPLIT, refit
from engine.train.auto.search import REPEATS, Scored, Search
from engine.train.config import DEFAULT_EPOCHS, TrainConfig
from engine.train.prepare import Prepared, check_config
from engine.train.probe import record_precision

NOISE_RULE = ("a change is kept only when its mean gain over the same folds exceeds one standard error of the "
              "paired gain; else the recipe tried first (simpler, cheaper) stays")


def planned_split(config: TrainConfig, info: DatasetInfo, ctx: JobContext) -> SplitPlan:
    """The run's plan: every usable photo is a training photo, except a held-out split when asked for
    (--holdout) or when the dataset has its own val/ folder. The exclude list and duplicate groups apply."""
    fixed = any(s.split for s in info.samples)
    fraction = config.holdout if config.holdout else config.val_fraction
    plan = plan_split(info, fraction, config.seed or 0, config.exclude, config.group_duplicates)
    if fixed:
        plan.notes.append(("info", f"auto: the dataset's own val/ folder ({len(plan.val)} photos) is held out: "
                                   "neither the search nor the final model sees it"))
    elif config.holdout:
        plan.notes.append(("info", f"auto: {len(plan.val)} photos held out (--holdout {config.holdout:g}): "
                                   "neither the search nor the final model sees them"))
    else:
        plan.train, plan.val = plan.train + plan.val, []
        plan.notes.append(("info", "auto: no held-out photos (--holdout 0): the search cross-validates on all "
                                   f"{len(plan.train)} photos and the final model is fitted on all of them"))
    return plan


def run_search(search: Search, config: TrainConfig, median_side: int | None) -> Scored:
    """The stages in order, each candidate challenging the incumbent; then the ensemble; the winner."""
    baseline = search.score(default_probe(config, median_side), "default probe", required=True)
    assert baseline is not None  # required: scored whatever the budget
    search.default = baseline
    search.challenge(baseline)
    for stage in STAGES:
        assert search.incumbent is not None
        incumbent = search.incumbent.recipe
        assert incumbent is not None  # the ensemble comes last
        for r in stage(config, median_side, search.ranked(), incumbent):
            scored = search.score(r, stage.__name__.removeprefix("stage_"))
            if scored is not None:
                search.challenge(scored)
    # the ensemble extracts nothing: milliseconds on the members' out-of-fold predictions, so it is scored even
    # when the budget is spent (every recipe it combines was scored within it)
    ensemble_candidate(search)
    finetune_estimate(search)
    assert search.incumbent is not None
    return search.incumbent


def finetune_estimate(search: Search) -> None:
    """Partial fine-tuning scored the same way would train a network per fold of every repeat: its estimate
    (forward and backward cost about three forward passes per image and epoch) is logged and listed."""
    best = next((r for r in search.ranked() if len(r.backbones) == 1), None)
    if best is None:
        return
    cfg, n, k = search.config, len(search.kept) or len(search.paths), search.config.folds
    per_image = 3 * search.rate(best.backbones[0]) * best.img_size ** 2 / 1e6
    epochs = DEFAULT_EPOCHS["partial"]
    est = REPEATS * k * epochs * n * (k - 1) / k * per_image + epochs * n * per_image
    why = "budget" if est > search.left() else "not scored by this version's search (try --mode partial)"
    search.skip(f"partial fine-tuning of {best.backbones[0]} ({cfg.unfreeze} stages, {epochs} epochs)",
                {"mode": "partial", "backbone": best.backbones[0], "img_size": best.img_size}, "fine-tuning", why,
                est)


def model_structure(winner: Scored, config: TrainConfig) -> dict:
    """config.json's auto.model: what engine.models.ensemble.build_auto_model rebuilds. Backbones shared by
    several members are listed (and run) once."""
    recipes = winner.recipes()
    names = list(dict.fromkeys(b for r, _ in recipes for b in r.backbones))
    backbones = [{"name": b, "weights_identity": weights_identity(get_spec(b), config.weights, seed=config.seed),
                  "feature_dim": feature_dim(b)} for b in names]
    total = sum(w for _, w in recipes)
    members = []
    for r, w in recipes:
        prep = r.prep()
        offsets = ten_crop_offsets(prep) if r.tta == "ten-crop" else None
        views = views_of(prep.crop_size, offsets, r.tta != "none")
        members.append({"name": r.name, "weight": w / total, "parts": [names.index(b) for b in r.backbones],
                        "views": [list(v) for v in views], "recipe": r.settings()})
    return structure_of(backbones, members, recipes[0][0].input_prep().to_dict())


def leaderboard(search: Search, winner: Scored, config: TrainConfig, n_train: int, n_holdout: int) -> dict:
    assert search.default is not None
    skipped = [{"recipe": e["recipe"], "stage": e["stage"], "why": e["skipped"],
                "estimated_seconds": e["estimated_seconds"]} for e in search.leaderboard if "skipped" in e]
    default = search.default
    settings = (winner.recipe.settings() if winner.recipe is not None else
                {"ensemble": " + ".join(f"{w:.2f} x ({r.name})" for r, w in winner.members)})
    return {"winner": winner.name, "winner_settings": settings, "cv_accuracy": winner.accuracy,
            "cv_std": winner.cv.accuracy_std, "default_probe": {"recipe": default.name, "cv_accuracy":
                                                                default.accuracy, "cv_std": default.cv.accuracy_std},
            "search_seconds": round(search.elapsed(), 2), "budget_minutes": config.budget, "folds": config.folds,
            "repeats": REPEATS, "noise_rule": NOISE_RULE, "precision": search.precision,
            "scored_on": f"training photos ({len(search.kept)} images)",
            "train_images": n_train, "holdout_images": n_holdout, "left_out": skipped,
            "leaderboard": sorted(search.leaderboard, key=lambda e: -e.get("cv_accuracy", -1.0))}


def choose_recipe(config: TrainConfig, ctx: JobContext) -> tuple[dict, tuple[DatasetInfo, SplitPlan]]:
    """Search on the training photos of the run's plan; returns the leaderboard (with the model's structure
    and the winner's out-of-fold predictions under "model" and "oof") and the (scan, plan) searched on: the
    run trains on that very plan (engine.train.prepare's `planned`). No run directory yet."""
    check_config(config)
    config.seed = seed_everything(config.seed)
    info = scan_dataset(config.dataset, ctx=ctx)
    plan = planned_split(config, info, ctx)
    if config.holdout:  # a replanned split (eval --replan) holds out the same share
        config.val_fraction = config.holdout
    ctx.log(f"auto: searching recipes on the {len(plan.train)} training photos ({REPEATS} x {config.folds}-fold "
            f"CV, budget {config.budget:g} min)" + (f"; {len(plan.val)} held out" if plan.val else ""))
    search = Search(config, plan.train, str(info.root), len(info.classes), ctx, resolve_device(config.device),
                    n_holdout=len(plan.val), precision=training_precision(config.precision, config.amp))
    winner = run_search(search, config, info.median_side)
    ctx.log(f"auto: winner {winner.name} (CV accuracy {winner.accuracy:.4f}; the default probe "
            f"{search.default.accuracy if search.default else float('nan'):.4f}) after {search.elapsed():.0f}s")
    left = [e for e in search.leaderboard if "skipped" in e]
    if left:
        ctx.log(f"auto: left out {len(left)}: " + "; ".join(f"{e['recipe']} ({e['skipped']})" for e in left))
    first = winner.recipes()[0][0]
    config.backbone, config.img_size = first.backbones[0], first.img_size  # the run's name and first member
    config.tta = any(r.tta != "none" for r, _ in winner.recipes())
    board = leaderboard(search, winner, config, len(plan.train), len(plan.val))
    board["model"] = model_structure(winner, config)
    kept = torch.as_tensor(search.kept, dtype=torch.long, device="cpu")
    board["oof"] = (winner.cv.oof_probs, search.labels[kept], [search.paths[i] for i in search.kept])
    return board, (info, plan)


def train_chosen(p: Prepared, board: dict, ctx: JobContext) -> dict:
    """leaderboard.json, the chosen model's structure in config.json, the cross-validated report when no photo
    is held out, then the refit."""
    oof = board.pop("oof")
    structure = board.pop("model")
    atomic_write_json(p.run_dir / "leaderboard.json", board)
    p.record["auto"] = {**{k: v for k, v in board.items() if k != "leaderboard"}, "model": structure}
    p.record["preprocessing"] = structure["input"]  # every member reads this one input batch
    record_precision(p, board["precision"], "as auto's search extracted its features")  # saves config.json
    if not p.val:
        save_cv_report(p, board, *oof)
    return {**refit(p, structure, board["precision"], ctx), "auto": board}


def save_cv_report(p: Prepared, board: dict, probs: torch.Tensor, labels: torch.Tensor, paths: list[str]) -> None:
    """report.json from the winner's out-of-fold predictions: confusion, per-class metrics and top losses of
    training photos each judged by heads that never saw it; its accuracy, the cross-validated estimate."""
    report = build_report(probs.clamp_min(1e-12).log(), labels, paths, p.info.classes, split=CV_SPLIT)
    report["estimate"] = {"kind": CV_SPLIT, "cv_accuracy": board["cv_accuracy"], "cv_std": board["cv_std"],
                          "folds": board["folds"], "repeats": board["repeats"],
                          "note": "no held-out photos: the accuracy is the search's cross-validated estimate "
                                  "for the chosen recipe (chosen among the candidates on these same folds, so "
                                  "slightly optimistic); the saved model was refitted on all of these photos"}
    report["accuracy"] = board["cv_accuracy"]  # the estimate itself (the mean over every fold of every repeat)
    save_report(p.run_dir, report, p.prep)


def fit_recipe(p: Prepared, ctx: JobContext) -> dict:
    """A resumed auto run: the recorded model refitted (seconds, on cached features), no search."""
    structure = (p.record.get("auto") or {}).get("model")
    if not structure:
        raise RunError(f"{p.run_dir} recorded no chosen model: start it again.")
    precision = p.record.get("precision_resolved") or (p.record.get("auto") or {}).get("precision") or "fp32"
    return refit(p, structure, precision, ctx)


def check_resumable(run_dir: Path, record: dict) -> None:
    """An auto run resumes (its recorded model fitted again, no search) once its search has chosen."""
    if not ((record.get("auto") or {}).get("model")):
        raise RunError(f"{run_dir} stopped during its recipe search, before choosing (or was written by an older "
                       "tlbench): start it again (the features it extracted are cached, so the search is quicker).")
