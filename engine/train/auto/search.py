"""The recipe search of `--mode auto`: every candidate scored by repeated stratified k-fold cross-validation on
the same folds, a change kept only when it beats the incumbent by more than the noise, within the budget.

- **The folds** are made once, on the training photos of the run's plan (duplicate groups in one fold,
  engine.data.splits.sample_groups), as REPEATS sets of k folds with seeds seed, seed+1, …; every candidate is
  scored on all of them, so two candidates' fold accuracies pair up.
- **The noise rule**: a challenger replaces the incumbent only when its mean gain over the paired folds is more
  than one standard error of that gain (engine.evaluate.crossval.paired_gain); else the incumbent — tried
  earlier, so the simpler or cheaper recipe — stays. The first incumbent is the default probe, so every later
  winner's estimate is above the default probe's, on the same folds.
- **The budget**: before a candidate starts, its time is estimated (the (image, view) pairs it must still
  extract at the rate measured for its backbone, its cross-validation at the rate measured per row and feature,
  and what the final model would need: the held-out photos' features) and a candidate that would end past the
  budget is skipped and listed with its estimate. The search goes on with the next: a cheaper one may fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from engine.core.jobs import JobContext
from engine.data.layouts import Sample
from engine.data.splits import sample_groups
from engine.evaluate.crossval import (
    CVResult,
    cross_validate_repeated,
    one_cpu_thread,
    paired_gain,
    repeated_folds,
)
from engine.features.views import missing_count, view_features
from engine.train.auto.recipes import Recipe
from engine.train.config import TrainConfig

REPEATS = 3  # sets of k folds: the estimate's std across them is a third of one set's on few hundred photos
# seconds per image per megapixel of input before any extraction was timed (a warm cache times none): a
# 2-core CPU's order of magnitude for an EfficientNet-Lite, so a budget is not overrun on a guess of zero
UNMEASURED_RATE = 1.0
TIE = 1e-9  # float rounding: a gain this close to its standard error is equal to it


def beats(gain: float, se: float) -> bool:
    """The noise rule: a mean gain over the paired folds counts only when it exceeds one standard error by more
    than rounding. A change on a single fold (every other fold tied) has a gain of exactly one standard error
    whatever its size, so it never counts: one photo judged differently in one fold is not evidence."""
    return gain - se > TIE


@dataclass
class Scored:
    recipe: Recipe | None  # None: the ensemble (its members say what it is)
    name: str
    cv: CVResult
    seconds: float
    members: list[tuple[Recipe, float]] = field(default_factory=list)  # the ensemble's (recipe, weight)

    @property
    def accuracy(self) -> float:
        return self.cv.accuracy

    def recipes(self) -> list[tuple[Recipe, float]]:
        """What the saved model is made of: the recipe itself, or the ensemble's weighted members."""
        if self.recipe is not None:
            return [(self.recipe, 1.0)]
        return self.members


class Search:
    """Scores recipes on the training photos; `leaderboard` lists every candidate, scored or skipped."""

    def __init__(self, config: TrainConfig, train: list[Sample], root: str, n_classes: int, ctx: JobContext,
                 device: torch.device, clock=time.perf_counter, n_holdout: int = 0, precision: str = "auto"):
        self.config, self.samples, self.root, self.n_classes, self.ctx = config, train, root, n_classes, ctx
        self.device, self.clock, self.n_holdout = device, clock, n_holdout
        self.paths = [s.path for s in train]
        self.labels = torch.tensor([s.label for s in train], dtype=torch.long, device="cpu")
        self.budget_s = config.budget * 60.0
        self.started = clock()
        self.precision = precision  # resolved by the first extraction, then the same for every backbone
        self.store: dict[tuple, torch.Tensor] = {}  # stored(recipe, backbone, view) -> [N, D]
        self.unusable: dict[int, str] = {}
        self.fold_sets: list | None = None
        self.kept: list[int] = []
        self.results: dict[str, Scored] = {}
        self.leaderboard: list[dict] = []
        self.rates: dict[str, float] = {}  # backbone -> seconds per image per megapixel, measured
        self.cv_rate = 0.0  # seconds per (row x feature) of a repeated cross-validation, measured
        self.incumbent: Scored | None = None
        self.default: Scored | None = None

    # ------------------------------------------------------------------ time

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def rate(self, backbone: str) -> float:
        return self.rates.get(backbone) or max(self.rates.values(), default=UNMEASURED_RATE)

    def missing(self, r: Recipe) -> dict[str, int]:
        """(image, view) pairs each backbone of `r` would still extract."""
        out = {}
        for b in r.backbones:
            todo = [v for v in r.views() if stored(r, b, v) not in self.store]
            out[b] = missing_count(b, r.img_size, todo, self.root, self.paths, self.config.weights,
                                   self.config.seed or 0, self.device, self.precision, r.prep_for(b)) if todo else 0
        return out

    def extract_seconds(self, r: Recipe, pairs: dict[str, int]) -> float:
        mp = r.img_size ** 2 / 1e6
        return sum(n * self.rate(b) * mp for b, n in pairs.items())

    def estimate(self, r: Recipe) -> float:
        """Seconds `r` would take, and the final model's share should it win (its held-out photos' views)."""
        final = {b: self.n_holdout * len(r.test_views()) for b in r.backbones}
        return (self.extract_seconds(r, self.missing(r)) + self.cv_cells(r) * self.cv_rate
                + self.extract_seconds(r, final))

    def cv_cells(self, r: Recipe) -> int:
        """Rows x features of `r`'s training matrix: what a cross-validation's time grows with."""
        rows = len(self.paths) * (len(r.views()) if r.aug_views else 1)
        return rows * sum(self.width(b) for b in r.backbones)

    def width(self, backbone: str) -> int:
        for (b, *_), f in self.store.items():
            if b == backbone:
                return f.shape[1]
        return 1280  # unmeasured: EfficientNet-Lite's width, for an estimate only

    # ------------------------------------------------------------------ features and scoring

    def features(self, r: Recipe) -> torch.Tensor:
        """[N, V, D]: every view of `r` (test views, then random crops), its backbones side by side."""
        per_backbone = []
        for b in r.backbones:
            todo = [v for v in r.views() if stored(r, b, v) not in self.store]
            if todo:
                t0 = self.clock()
                pairs = self.missing(replace_views(r, b))
                feats, errors, self.precision = view_features(
                    b, r.img_size, todo, self.root, self.paths, self.device, weights=self.config.weights,
                    seed=self.config.seed or 0, batch_size=self.config.batch_size, workers=self.config.workers,
                    ctx=self.ctx, precision=self.precision, prep=r.prep_for(b))
                if pairs[b]:
                    self.rates[b] = (self.clock() - t0) / pairs[b] / (r.img_size ** 2 / 1e6)
                for i, view in enumerate(todo):
                    self.store[stored(r, b, view)] = feats[:, i]
                for i, reason in errors.items():
                    if i not in self.unusable:
                        self.unusable[i] = reason
                        self.ctx.log(f"skipped {self.paths[i]}: {reason}", "warning")
            per_backbone.append(torch.stack([self.store[stored(r, b, v)] for v in r.views()], 1))
        return torch.cat(per_backbone, 2)

    def folds(self) -> list:
        """The same REPEATS x k folds for every candidate, on the training photos usable when they were made."""
        if self.fold_sets is None:
            self.kept = [i for i in range(len(self.paths)) if i not in self.unusable]
            kept_paths = [self.paths[i] for i in self.kept]
            self.fold_sets = repeated_folds(self.labels[self.kept], self.config.folds, self.config.seed or 0,
                                            sample_groups(self.root, kept_paths), REPEATS)
        return self.fold_sets

    def cross_validate(self, r: Recipe) -> CVResult:
        feats = self.features(r)
        fold_sets = self.folds()
        lost = [i for i in self.kept if i in self.unusable]
        if lost:  # a view that fails where the others decoded: the folds no longer pair up
            raise RuntimeError(f"{len(lost)} photo(s) unreadable for this view only")
        rows = torch.as_tensor(self.kept, dtype=torch.long, device="cpu")
        feats, y = feats[rows], self.labels[rows]
        x = feats[:, :len(r.test_views())].mean(1)
        views = feats if r.aug_views else None
        with one_cpu_thread():  # the head's solves are small: one thread (engine.evaluate.crossval)
            return cross_validate_repeated(x, y, self.n_classes, fold_sets, r.head(self.config), views,
                                           check=self.ctx.check)

    def score(self, r: Recipe, stage: str, required: bool = False) -> Scored | None:
        """Cross-validate `r` unless the budget forbids it (a `required` candidate runs regardless)."""
        if r.name in self.results:
            return self.results[r.name]
        if any(e["recipe"] == r.name for e in self.leaderboard):
            return None  # skipped before
        est = self.estimate(r)
        if not required and est > self.left():
            self.skip(r.name, r.settings(), stage, "budget", est)
            return None
        t0 = self.clock()
        pairs = sum(self.missing(r).values())
        try:
            cv = self.cross_validate(r)
        except RuntimeError as err:
            self.skip(r.name, r.settings(), stage, str(err), est)
            return None
        seconds = self.clock() - t0
        self.cv_rate = max(self.cv_rate, cv.seconds / max(self.cv_cells(r), 1))
        scored = Scored(r, r.name, cv, seconds)
        self.results[r.name] = scored
        self.leaderboard.append({"recipe": r.name, "settings": r.settings(), "stage": stage,
                                 **self.cv_entry(cv), "extracted": pairs, "seconds": round(seconds, 2)})
        self.ctx.log(f"auto: {r.name}: CV accuracy {cv.accuracy:.4f} ± {cv.accuracy_std:.4f} ({seconds:.1f}s)")
        return scored

    def cv_entry(self, cv: CVResult) -> dict:
        return {"cv_accuracy": round(cv.accuracy, 6), "cv_std": round(cv.accuracy_std, 6),
                "cv_top5": round(cv.top5, 6), "folds": cv.folds, "repeats": len(self.folds()),
                "fold_accuracies": [round(a, 6) for a in cv.fold_accuracies]}

    def skip(self, name: str, settings: dict, stage: str, why: str, estimate: float) -> None:
        left = max(self.left(), 0.0)
        self.ctx.log(f"auto: skipped {name} ({why}: about {estimate:.0f}s, {left:.0f}s of the budget left)")
        self.leaderboard.append({"recipe": name, "settings": settings, "stage": stage, "skipped": why,
                                 "estimated_seconds": round(estimate, 1)})

    # ------------------------------------------------------------------ the noise rule

    def challenge(self, challenger: Scored) -> bool:
        """Make `challenger` the incumbent when it beats it by more than one standard error of the paired gain."""
        entry = next(e for e in self.leaderboard if e["recipe"] == challenger.name)
        if self.incumbent is None:
            self.incumbent = challenger
            entry["kept"] = True
            return True
        if challenger is self.incumbent:
            return False
        gain, se = paired_gain(challenger.cv.fold_accuracies, self.incumbent.cv.fold_accuracies)
        kept = beats(gain, se)
        entry.update({"vs": self.incumbent.name, "gain": round(gain, 6), "gain_se": round(se, 6), "kept": kept})
        if kept:
            self.ctx.log(f"auto: kept {challenger.name}: +{gain:.4f} ± {se:.4f} over {self.incumbent.name}")
            self.incumbent = challenger
        elif gain > 0:
            self.ctx.log(f"auto: not kept {challenger.name}: +{gain:.4f} is within the noise (± {se:.4f})")
        return kept

    def ranked(self) -> list[Recipe]:
        scored = [s for s in self.results.values() if s.recipe is not None]
        return [s.recipe for s in sorted(scored, key=lambda s: -s.accuracy) if s.recipe is not None]


def stored(r: Recipe, backbone: str, view: str) -> tuple:
    """The store's key for a backbone's view in `r`: what its features depend on."""
    p = r.prep_for(backbone)
    return backbone, p.crop_size, p.resize_size, p.interpolation, view


def replace_views(r: Recipe, backbone: str) -> Recipe:
    """`r` with one backbone: what that backbone must extract for it."""
    return replace(r, backbones=(backbone,), geometry=r.geometry or r.backbones[0])
