"""A dataset's own mistakes, from features and out-of-fold probabilities: pure analysis, no files touched.

- Label issues: cleanlab's `find_label_issues` (confident learning) on out-of-fold probe probabilities, ranked
  by self-confidence; each with the given label, the suggested one (the most probable other class) and a score
  (1 - the probability of the given label: higher is more suspicious).
- Duplicates: exact ones (the same bytes: equal content hashes, computed by the caller) and near ones (cosine
  similarity of centred features above a threshold), grouped, each group flagged when it straddles the
  train/validation split (leakage: validation accuracy counts images the model trained on) or mixes labels.
  Similarities are computed a block of rows at a time, so memory stays at N x block, never N x N.
- Outliers: images far from every class, scored by 1 - the cosine similarity to the nearest class centre
  and flagged when the score is far above the dataset's typical one (median + 4 MADs, a robust z of ~6).
- Class imbalance: counts per class and the largest / smallest ratio.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

NEAR_DUPLICATE = 0.90  # centred cosine similarity: unrelated photos of one class reach ~0.75, re-encoded copies ~0.92+
NEIGHBOURS = 8  # near duplicates kept per image: a folder of 1,000 blank frames must not list 10^6 pairs
SIM_BLOCK_ELEMENTS = 1 << 24  # similarities held at once (64 MB of float32), whatever N is
IMBALANCE_RATIO = 3.0


# An image is also a suspect when the cross-validated model puts it confidently in another class: another class
# at least CONFIDENT_OTHER and its own at most DOUBTFUL_OWN. Confident learning alone (cleanlab) compares an
# image's probability with the class's average self-confidence (~0.93 on a small, clean dataset), so on such
# data a plain mislabel at 0.88 was missed, depending on which images shared its fold.
CONFIDENT_OTHER = 0.5
DOUBTFUL_OWN = 0.25


def label_issues(labels: np.ndarray, probs: np.ndarray, paths: Sequence[str], classes: Sequence[str]) -> list[dict]:
    """Likely label errors, most suspicious first: [{"path", "given", "suggested", "score", "why"}] — cleanlab's
    confident-learning issues and the images predicted confidently as another class (see CONFIDENT_OTHER)."""
    # imported here: cleanlab imports rich when it loads, and the engine must import no UI library
    # (tests/engine/cli/test_headless.py walks every engine module)
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)  # host-side numpy: cleanlab's own precision
    probs = probs / probs.sum(1, keepdims=True)
    if len(labels) == 0 or probs.shape[1] < 2:
        return []
    found = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence",
                              min_examples_per_class=1, n_jobs=1)  # n_jobs=1: no processes forked from a job
    other = probs.copy()
    other[np.arange(len(labels)), labels] = -1
    own = probs[np.arange(len(labels)), labels]
    confident = np.flatnonzero((other.max(1) >= CONFIDENT_OTHER) & (own <= DOUBTFUL_OWN))
    why = {int(i): "confident learning (cleanlab)" for i in found}
    for i in confident.tolist():
        why.setdefault(int(i), "cross-validated prediction")
    out = []
    for i in sorted(why, key=lambda i: (own[i], i)):  # least confident in its own label first
        suggested = int(other[i].argmax())
        out.append({"path": paths[i], "given": classes[labels[i]], "suggested": classes[suggested],
                    "score": round(float(1 - own[i]), 6), "why": why[i],
                    "detail": f"cross-validated: {classes[suggested]} {probs[i, suggested]:.0%}, "
                              f"{classes[labels[i]]} {own[i]:.0%}"})
    return out


def exact_duplicate_groups(hashes: Sequence[str | None]) -> list[list[int]]:
    """Indices sharing a content hash (None: not hashed, e.g. a unique size), groups of 2 or more."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h is not None:
            groups[h].append(i)
    return [g for g in groups.values() if len(g) > 1]


def _unit_centred(feats: torch.Tensor) -> torch.Tensor:
    """Features minus their mean, scaled to unit length (float32, CPU). Centring matters: pooled ReLU features
    are all positive, so raw cosine similarities of unrelated images sit around 0.7."""
    x = feats.float()
    return F.normalize(x - x.mean(0), dim=1)


def near_duplicate_pairs(feats: torch.Tensor, threshold: float = NEAR_DUPLICATE,
                         neighbours: int = NEIGHBOURS) -> list[tuple[int, int, float]]:
    """(i, j, similarity) with i < j and similarity >= threshold, at most `neighbours` per image, computed a
    block of rows at a time (memory: the features plus block x N similarities)."""
    n = len(feats)
    if n < 2:
        return []
    x = _unit_centred(feats)
    block = max(1, min(n, SIM_BLOCK_ELEMENTS // n))
    k = min(neighbours + 1, n)
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, n, block):
        sims = x[start:start + block] @ x.T  # [b, N]
        rows = torch.arange(len(sims), device=sims.device)
        sims[rows, rows + start] = -1  # an image is not its own duplicate
        top, idx = sims.topk(k, dim=1)
        for r, c in (top >= threshold).nonzero().tolist():
            i, j = start + r, int(idx[r, c])
            pairs[(min(i, j), max(i, j))] = float(top[r, c])
    return [(i, j, s) for (i, j), s in sorted(pairs.items())]


def _components(n: int, edges: Sequence[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in {i for e in edges for i in e}:
        groups[find(i)].append(i)
    return [sorted(g) for g in groups.values()]


def duplicate_groups(feats: torch.Tensor, hashes: Sequence[str | None], labels: np.ndarray, is_val: np.ndarray,
                     paths: Sequence[str], classes: Sequence[str], threshold: float = NEAR_DUPLICATE) -> list[dict]:
    """Exact and near duplicates, grouped: [{"paths", "similarity", "labels", "across_split", "exact",
    "conflicting_labels"}], groups that leak across the split or mix labels first."""
    exact = exact_duplicate_groups(hashes)
    edges = [(g[0], j) for g in exact for j in g[1:]]
    sims: dict[tuple[int, int], float] = {(min(a, b), max(a, b)): 1.0 for a, b in edges}
    for i, j, s in near_duplicate_pairs(feats, threshold):
        sims.setdefault((i, j), s)
    exact_sets = [set(g) for g in exact]
    groups = _components(len(paths), list(sims))
    member = {i: k for k, g in enumerate(groups) for i in g}
    weakest = [1.0] * len(groups)
    for (a, _), s in sims.items():
        weakest[member[a]] = min(weakest[member[a]], s)
    out = []
    for group, sim in zip(groups, weakest):
        names = [classes[int(labels[i])] for i in group]
        out.append({
            "paths": [paths[i] for i in group],
            "similarity": round(sim, 6),  # the weakest link that joined the group
            "labels": names,
            "across_split": bool(is_val[group].any() and not is_val[group].all()),
            "exact": any(set(group) <= s for s in exact_sets),
            "conflicting_labels": len(set(names)) > 1,
        })
    out.sort(key=lambda d: (not d["across_split"], not d["conflicting_labels"], -d["similarity"], d["paths"]))
    return out


def outliers(feats: torch.Tensor, labels: np.ndarray, paths: Sequence[str], n_classes: int,
             limit: int = 50) -> list[dict]:
    """Images far from every class centre, most distant first: [{"path", "score", "nearest"}] (score = 1 - the
    cosine similarity to the nearest class centre, nearest = that class's index)."""
    if len(feats) < 3:
        return []
    x = _unit_centred(feats)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=x.device)
    centres = torch.zeros(n_classes, x.shape[1], device=x.device).index_add_(0, y, x)
    centres = F.normalize(centres, dim=1)
    best, nearest = (x @ centres.T).max(1)
    score = 1 - best
    median = score.median()
    mad = (score - median).abs().median().clamp_min(1e-6)
    flagged = (score > median + 4 * mad).nonzero().flatten()
    flagged = flagged[score[flagged].argsort(descending=True)][:limit]
    return [{"path": paths[int(i)], "score": round(float(score[i]), 6), "nearest": int(nearest[i])}
            for i in flagged]


def imbalance(labels: np.ndarray, classes: Sequence[str]) -> dict:
    """{"counts": {class: n}, "ratio": largest / smallest, "imbalanced": ratio >= IMBALANCE_RATIO}."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    ratio = float(counts.max() / max(counts.min(), 1)) if len(counts) else 1.0
    return {"counts": {c: int(n) for c, n in zip(classes, counts)}, "ratio": round(ratio, 3),
            "imbalanced": ratio >= IMBALANCE_RATIO}
