"""The ensemble candidate of `--mode auto`: the best recipes' probabilities averaged, with weights chosen on
out-of-fold predictions by Caruana et al.'s greedy ensemble selection (with replacement: a recipe picked k times
out of n steps weighs k/n; "Ensemble selection from libraries of models", ICML 2004; AutoGluon's weighted
ensemble does the same).

Scoring it honestly: weights chosen on the very predictions they are scored on flatter the ensemble. So each
fold's accuracy uses weights chosen on the other folds' out-of-fold predictions (of the same repeat), and the
ensemble wins only when it beats every single recipe by more than one standard error of the paired gain, on the
same folds. The saved model's weights are chosen on every out-of-fold prediction of every repeat.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.evaluate.crossval import CVResult, paired_gain, top_k_accuracy
from engine.train.auto.search import Scored, Search, beats

POOL = 6  # the best recipes that may join (those that read the same input batch as the incumbent)
STEPS = 20  # greedy steps: weights in twentieths


def select_weights(probs: list[torch.Tensor], y: torch.Tensor, steps: int = STEPS) -> np.ndarray:
    """Caruana's greedy selection with replacement: add, step by step, the member whose addition gives the
    running average the lowest log loss; the weights of the best step. `probs`: each member's [N, C]."""
    counts = np.zeros(len(probs))
    best, best_counts = float("inf"), None
    total = torch.zeros_like(probs[0])
    rows = torch.arange(len(y), device="cpu")
    for step in range(1, steps + 1):
        losses = [float(-((total + p) / step)[rows, y].clamp_min(1e-12).log().mean()) for p in probs]
        j = int(np.argmin(losses))  # ties: the better-ranked member (listed first)
        counts[j] += 1
        total = total + probs[j]
        if losses[j] < best - 1e-12:
            best, best_counts = losses[j], counts.copy()
    assert best_counts is not None
    return best_counts / best_counts.sum()


def mix(probs: list[torch.Tensor], weights: np.ndarray) -> torch.Tensor:
    out = torch.zeros_like(probs[0])
    for p, w in zip(probs, weights):
        if w:
            out = out + float(w) * p
    return out


def pool(search: Search) -> list[Scored]:
    """The recipes that may join: scored, reading the incumbent's input batch, best first."""
    assert search.incumbent is not None and search.incumbent.recipe is not None
    key = search.incumbent.recipe.input_key()
    same = [s for s in search.results.values() if s.recipe is not None and s.recipe.input_key() == key]
    return sorted(same, key=lambda s: -s.accuracy)[:POOL]


def cross_fitted(members: list[Scored], y: torch.Tensor, fold_sets: list) -> CVResult:
    """The ensemble's cross-validated accuracy, each fold's weights chosen on the other folds of its repeat."""
    accs, by_repeat = [], []
    for rep, folds in enumerate(fold_sets):
        probs = [m.cv.oof_by_repeat[rep] for m in members]  # type: ignore[index]
        oof = torch.zeros_like(probs[0])
        for train_idx, test_idx in folds:
            tr = torch.as_tensor(train_idx, device="cpu")
            te = torch.as_tensor(test_idx, device="cpu")
            weights = select_weights([p[tr] for p in probs], y[tr])
            oof[te] = mix([p[te] for p in probs], weights)
            accs.append(float((oof[te].argmax(1) == y[te]).float().mean()))
        by_repeat.append(oof)
    per_repeat = [float(np.mean(accs[i * len(f):(i + 1) * len(f)])) for i, f in enumerate(fold_sets)]
    stacked = torch.stack(by_repeat)
    return CVResult(accuracy=float(np.mean(accs)), accuracy_std=float(np.std(per_repeat)),
                    top5=top_k_accuracy(stacked.mean(0), y), fold_accuracies=[round(a, 6) for a in accs],
                    oof_probs=stacked.mean(0), seconds=0.0, folds=len(fold_sets[0]),
                    extra={"repeats": len(fold_sets)}, oof_by_repeat=stacked)


def ensemble_candidate(search: Search) -> Scored | None:
    """Score the ensemble of the pool and let it challenge: it becomes the incumbent only when it beats every
    single recipe scored by more than the noise. None when there is nothing to combine."""
    members = pool(search)
    if len(members) < 2 or search.fold_sets is None:
        why = "fewer than two recipes scored to combine"
        search.skip("ensemble of the best recipes", {}, "ensemble", why, 0.0)
        return None
    t0 = search.clock()
    y = search.labels[torch.as_tensor(search.kept, dtype=torch.long, device="cpu")]
    cv = cross_fitted(members, y, search.fold_sets)
    # the saved weights: chosen on every out-of-fold prediction of every repeat
    stacked = [m.cv.oof_by_repeat.reshape(-1, m.cv.oof_by_repeat.shape[-1]) for m in members]  # type: ignore[union-attr]
    weights = select_weights(stacked, y.repeat(len(search.fold_sets)))
    chosen = [(m, float(w)) for m, w in zip(members, weights) if w > 0]
    if len(chosen) < 2:
        why = f"the selection kept one recipe ({chosen[0][0].name})"
        search.ctx.log(f"auto: no ensemble: {why}")
        search.leaderboard.append({"recipe": f"ensemble of the best {len(members)} recipes", "settings": {},
                                   "stage": "ensemble", "skipped": why, "estimated_seconds": 0.0})
        return None
    name = "ensemble: " + " + ".join(f"{w:.2f} x ({m.name})" for m, w in chosen)
    scored = Scored(None, name, cv, search.clock() - t0,
                    members=[(m.recipe, w) for m, w in chosen if m.recipe is not None])
    search.results[name] = scored
    singles = [s for s in search.results.values() if s.recipe is not None]
    margins = [(s.name, *paired_gain(cv.fold_accuracies, s.cv.fold_accuracies)) for s in singles]
    wins = all(beats(gain, se) for _, gain, se in margins)
    closest = min(margins, key=lambda m: m[1] - m[2])
    entry = {"recipe": name, "settings": {"members": [{"recipe": m.name, "weight": round(w, 4),
                                                       "settings": m.recipe.settings() if m.recipe else {}}
                                                      for m, w in chosen]},
             "stage": "ensemble", **search.cv_entry(cv), "seconds": round(scored.seconds, 2),
             "vs": closest[0], "gain": round(closest[1], 6), "gain_se": round(closest[2], 6), "kept": wins}
    search.leaderboard.append(entry)
    search.ctx.log(f"auto: {name}: CV accuracy {cv.accuracy:.4f} ± {cv.accuracy_std:.4f} "
                   f"({'kept' if wins else 'not kept'}: {closest[1]:+.4f} ± {closest[2]:.4f} over {closest[0]})")
    if wins:
        search.incumbent = scored
    return scored
