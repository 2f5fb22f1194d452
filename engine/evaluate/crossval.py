"""Cross-validated linear probes on features: the one machinery behind `compare`, `train --mode auto` and `audit`.

A candidate (a backbone, a concatenation, a resolution, a head's regularisation) is scored by stratified k-fold
cross-validation of a multinomial logistic regression on frozen features. It runs on the host, beside the cached
features, in float32: full-batch L-BFGS on standardised features converges in well under a second for a few
thousand images, deterministically (zero init, no sampling), so two candidates differ only by what they are.
Small solves run on one CPU thread (ONE_THREAD_BELOW): on a busy machine, threads wait on each other per op.

Folds come from scikit-learn's StratifiedKFold (shuffled with the job's seed): every class is spread over the folds
in proportion, which a few-shot dataset (8 photos per class) needs for the estimate to mean anything.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.core.errors import ConfigError

DEFAULT_L2 = 1e-3  # per-sample L2 on standardised features; `auto` chooses it by CV
# Below this many multiply-adds per logits pass (N x D x C), the solve runs on one CPU thread: its ops are tiny,
# and splitting each over threads only adds waiting. Measured on 2 shared cores (load ~12): 5 folds of 240 x 1280
# x 2 took 13 s on 2 threads, 0.6 s on 1; on an idle machine one thread is as fast at this size.
ONE_THREAD_BELOW = 5e7


@dataclass(frozen=True)
class HeadRecipe:
    """How the linear head is fitted: L2 strength (on standardised features, relative to the mean loss), label
    smoothing, and the L-BFGS iteration cap.

    solver "probe" is `train --mode probe`'s own head instead (engine.train.probe): Adam on the raw features in
    mini-batches of `batch_size`, `epochs` epochs at `lr` with `weight_decay`, initialised and shuffled from
    `seed` — scored for its last epoch, since choosing the best epoch needs a validation split."""

    l2: float = DEFAULT_L2
    label_smoothing: float = 0.0
    max_iter: int = 200
    solver: str = "lbfgs"
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict:
        if self.solver == "probe":
            return {"solver": "probe", "label_smoothing": self.label_smoothing, "epochs": self.epochs,
                    "lr": self.lr, "batch_size": self.batch_size, "weight_decay": self.weight_decay}
        return {"l2": self.l2, "label_smoothing": self.label_smoothing, "max_iter": self.max_iter}


@dataclass
class CVResult:
    accuracy: float
    accuracy_std: float
    top5: float
    fold_accuracies: list[float]
    oof_probs: torch.Tensor  # [N, C] on the CPU: each image's probabilities from the fold that held it out
    seconds: float
    folds: int
    extra: dict = field(default_factory=dict)
    oof_by_repeat: torch.Tensor | None = None  # [R, N, C]: each set of folds' own out-of-fold probabilities

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "accuracy_std": self.accuracy_std, "top5": self.top5,
                "fold_accuracies": self.fold_accuracies, "folds": self.folds, "seconds": round(self.seconds, 3)}


def stratified_folds(labels: torch.Tensor | np.ndarray | list[int], k: int, seed: int,
                     groups: list[int] | np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train_index, test_index)] for k stratified, shuffled folds. k shrinks to the largest class's size (a
    fold needs at least one image of some class); fewer than 2 images per fold is a ConfigError.

    `groups` (one number per image, engine.data.splits.sample_groups: the duplicate groups of the dataset's last
    audit): the images of one group always fall in the same fold, so a near-copy of a held-out image is never
    trained on (scikit-learn's StratifiedGroupKFold). Without a group of two or more, the plain folds."""
    y = np.asarray(labels.tolist() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64)
    if k < 2:
        raise ConfigError(f"--folds {k}: cross-validation needs at least 2 folds. Use --folds 5.")
    counts = np.bincount(y) if len(y) else np.zeros(0, dtype=np.int64)
    k_eff = int(min(k, counts.max() if len(counts) else 0, len(y)))
    g = np.asarray(groups, dtype=np.int64) if groups is not None else None
    if g is not None and len(g) != len(y):
        raise ValueError(f"{len(g)} groups for {len(y)} labels")
    grouped = g is not None and len(np.unique(g)) < len(g)
    if grouped:
        assert g is not None
        k_eff = min(k_eff, len(np.unique(g)))
    if k_eff < 2:
        raise ConfigError(
            f"{len(y)} labelled images: too few for {k}-fold cross-validation (each class needs at least 2 "
            "images). Add images, or train with --mode probe.")
    # Imported here, not at the top: scikit-learn (1.9's sklearn.callback) imports rich when it is installed,
    # and importing the engine must load no UI library (tests/engine/cli/test_headless.py); it also keeps ~1 s
    # of imports off every engine import.
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    # a class smaller than k lands in fewer folds: scikit-learn warns, the estimate is still sound
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if grouped:
            splitter = StratifiedGroupKFold(n_splits=k_eff, shuffle=True, random_state=seed)
            return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y, g)]
        splitter = StratifiedKFold(n_splits=k_eff, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y)]


def fit_linear(x: torch.Tensor, y: torch.Tensor, n_classes: int, recipe: HeadRecipe = HeadRecipe()) -> nn.Linear:
    """A multinomial logistic regression on `x` [N, D] (float32, CPU), returned as an nn.Linear on the raw features
    (the standardisation is folded into its weight and bias, so it drops in as a Classifier head)."""
    with one_cpu_thread(small(x, n_classes)):
        if recipe.solver == "probe":
            return _fit_probe(x, y, n_classes, recipe)
        return _fit_linear(x, y, n_classes, recipe)


def _fit_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, recipe: HeadRecipe) -> nn.Linear:
    """The probe's head, as engine.train.probe trains it (same initialisation, order and optimiser)."""
    generator = torch.Generator().manual_seed(recipe.seed)
    head = nn.Linear(x.shape[1], n_classes, device=x.device)
    nn.init.normal_(head.weight, std=0.01, generator=generator)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.Adam(head.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    x, y = x.float(), y.long()
    steps = max(1, -(-len(y) // recipe.batch_size))
    for _ in range(recipe.epochs):
        order = torch.randperm(len(y), generator=generator, device="cpu")
        for step in range(steps):
            idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            loss = F.cross_entropy(head(x[idx]), y[idx], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return head


def small(x: torch.Tensor, n_classes: int) -> bool:
    return x.device.type == "cpu" and x.shape[0] * x.shape[1] * n_classes < ONE_THREAD_BELOW


def _fit_linear(x: torch.Tensor, y: torch.Tensor, n_classes: int, recipe: HeadRecipe) -> nn.Linear:
    x = x.float()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(n_classes, x.shape[1], device=x.device, requires_grad=True)
    b = torch.zeros(n_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=recipe.max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y, label_smoothing=recipe.label_smoothing)
        loss = loss + 0.5 * recipe.l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    head = nn.Linear(x.shape[1], n_classes, device=x.device)
    with torch.no_grad():
        head.weight.copy_(w / std)
        head.bias.copy_(b - (w / std) @ mean)
    return head


@contextlib.contextmanager
def one_cpu_thread(active: bool = True):
    """Run the block on one intra-op thread, then restore the count. With PyTorch's OpenMP backend the count is
    the calling thread's own, so another job's threads (the workbench runs several) are not affected."""
    if not active:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def top_k_accuracy(logits: torch.Tensor, y: torch.Tensor, k: int = 5) -> float:
    if len(y) == 0:
        return math.nan
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(1).float().mean().item()


def cross_validate(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    recipe: HeadRecipe = HeadRecipe(),
    train_views: torch.Tensor | None = None,
    check: Callable[[], None] | None = None,
) -> CVResult:
    """Score a candidate: fit on each fold's training part, predict its held-out part.

    `x` [N, D] are the features each held-out image is judged on (test-time augmentation already averaged in,
    if any); `train_views` [N, V, D], if given, replaces `x` for fitting: every view of every training image is a
    training row (augmented-view features). `check` is called between folds (a job's stop/pause point).
    """
    with one_cpu_thread(small(x, n_classes)):
        return _cross_validate(x, y, n_classes, folds, recipe, train_views, check)


def _cross_validate(x, y, n_classes, folds, recipe, train_views, check) -> CVResult:
    t0 = time.perf_counter()
    y = y.long().cpu()
    oof = torch.zeros(len(y), n_classes, device="cpu")
    accs: list[float] = []
    for train_idx, test_idx in folds:
        if check is not None:
            check()
        tr = torch.as_tensor(train_idx, device="cpu")
        te = torch.as_tensor(test_idx, device="cpu")
        if train_views is not None:
            views = train_views[tr]  # [n, V, D]
            fx = views.reshape(-1, views.shape[-1])
            fy = y[tr].repeat_interleave(views.shape[1])
        else:
            fx, fy = x[tr], y[tr]
        head = fit_linear(fx, fy, n_classes, recipe)
        with torch.no_grad():
            logits = head(x[te].float())
        oof[te] = logits.softmax(1)
        accs.append((logits.argmax(1) == y[te]).float().mean().item())
    acc = float(np.mean(accs))
    return CVResult(
        accuracy=acc,
        accuracy_std=float(np.std(accs)),
        top5=top_k_accuracy(oof, y),
        fold_accuracies=[round(a, 6) for a in accs],
        oof_probs=oof,
        seconds=time.perf_counter() - t0,
        folds=len(folds),
    )


def repeated_folds(labels, k: int, seed: int, groups=None, repeats: int = 1) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """`repeats` sets of stratified (group-aware) folds, seeds seed, seed+1, …: each image is held out once per
    set, by a different partner each time."""
    return [stratified_folds(labels, k, seed + r, groups) for r in range(max(1, repeats))]


def cross_validate_repeated(x: torch.Tensor, y: torch.Tensor, n_classes: int,
                            fold_sets: list[list[tuple[np.ndarray, np.ndarray]]], recipe: HeadRecipe = HeadRecipe(),
                            train_views: torch.Tensor | None = None,
                            check: Callable[[], None] | None = None) -> CVResult:
    """`cross_validate` over several sets of folds (repeated k-fold): the accuracy is the mean over every fold
    of every set, its std the std of the sets' means (how much the estimate itself moves with the split, the
    noise that decides whether one candidate beats another), the out-of-fold probabilities the mean of each
    set's. One set is exactly `cross_validate`."""
    runs = [cross_validate(x, y, n_classes, folds, recipe, train_views, check) for folds in fold_sets]
    if len(runs) == 1:
        runs[0].oof_by_repeat = runs[0].oof_probs[None]
        return runs[0]
    means = [r.accuracy for r in runs]
    oof = torch.stack([r.oof_probs for r in runs]).mean(0)
    folds = [a for r in runs for a in r.fold_accuracies]
    return CVResult(
        accuracy=float(np.mean(folds)),
        accuracy_std=float(np.std(means)),
        top5=top_k_accuracy(oof, y.long().cpu()),
        fold_accuracies=folds,
        oof_probs=oof,
        seconds=sum(r.seconds for r in runs),
        folds=runs[0].folds,
        extra={"repeats": len(runs), "repeat_accuracies": [round(m, 6) for m in means]},
        oof_by_repeat=torch.stack([r.oof_probs for r in runs]),
    )


def paired_gain(challenger: list[float], incumbent: list[float]) -> tuple[float, float]:
    """(mean, standard error) of the per-fold differences in accuracy between two candidates scored on the same
    folds (every fold of every repeat, in the same order). Pairing removes what the folds share (an easy or a
    hard fold is easy or hard for both), so the standard error is that of the difference itself: the noise a
    gain must clear before it is believed (engine.train.auto)."""
    if len(challenger) != len(incumbent) or not incumbent:
        raise ValueError(f"{len(challenger)} and {len(incumbent)} fold accuracies: score both on the same folds")
    d = np.asarray(challenger, dtype=np.float64) - np.asarray(incumbent, dtype=np.float64)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean()), se
