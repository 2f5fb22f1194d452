"""A classifier's top-k answers as result rows: what predict, attack and dream report (JSON and display)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def top_predictions_rows(probs: torch.Tensor, classes: Sequence[str], k: int) -> list[list[dict]]:
    """For each row of `probs` [N, C] (probabilities, one column per class), its k most likely classes, best
    first: {"class", "index", "prob" (6 decimals)}; k is clipped to 1..C."""
    top = probs.topk(max(1, min(k, len(classes))), dim=1)
    return [[{"class": classes[i], "index": int(i), "prob": round(float(p), 6)} for p, i in zip(values, indices)]
            for values, indices in zip(top.values.tolist(), top.indices.tolist())]


def top_predictions(probs: torch.Tensor, classes: Sequence[str], k: int) -> list[dict]:
    """The k most likely classes of one image's probabilities [C]."""
    return top_predictions_rows(probs.unsqueeze(0), classes, k)[0]
