"""What `--mode auto` will search, in one line, before it runs: the workbench's summary under the form says it
instead of a backbone and epochs that auto does not use (issue 24 item 5).

The words come from the search's own constants and its own choice of backbones (engine.train.auto.recipes and search), so a
change to the search space changes the line; nothing outside this module spells the search out.
"""

from __future__ import annotations

from engine.core.errors import TlbenchError
from engine.train.auto.recipes import (
    AUG_VIEWS,
    CONCAT,
    L2_GRID,
    SCALE,
    SMOOTHING,
    TTA_MODES,
    search_backbones,
)
from engine.train.auto.search import REPEATS
from engine.train.config import TrainConfig


def short_names(names: list[str]) -> str:
    """'efficientnet_lite2, lite1, lite0': a name sharing the first one's family prefix is shown without it."""
    if not names:
        return ""
    prefix = names[0].rsplit("_", 1)[0] + "_" if "_" in names[0] else ""
    rest = [n[len(prefix):] if prefix and n.startswith(prefix) else n for n in names[1:]]
    return ", ".join([names[0], *rest])


def search_summary(config: TrainConfig) -> str:
    """'searches efficientnet_lite2, lite1, lite0, then 1.25x input; concatenations of 2-3; flip, ten-crop TTA;
    4 crop views; head L2 (5); smoothing 0.1; an ensemble · 3x5-fold CV · refit on every photo · within 15 min'.
    Stages the settings fix are left out or say so."""
    try:
        backbones = search_backbones(config)
    except TlbenchError as err:
        return err.message
    steps = [f"searches {short_names(backbones)}"]
    steps.append(f"then {SCALE:g}x input" if config.img_size is None else f"at {config.img_size} px")
    if len(backbones) > 1:
        steps.append(f"concatenations of 2-{min(CONCAT, len(backbones))}")
    steps.append(", ".join(m for m in TTA_MODES if m != "none") + " TTA")
    steps.append(f"{config.aug_views or AUG_VIEWS} crop views")
    steps.append(f"head L2 {config.head_l2:g}" if config.head_l2 is not None else f"head L2 ({len(L2_GRID)})")
    if not config.label_smoothing:
        steps.append(f"smoothing {SMOOTHING:g}")
    if len(backbones) > 1:
        steps.append("an ensemble")
    refit = f"refit on all but {config.holdout:.0%} held out" if config.holdout else "refit on every photo"
    return f"{'; '.join(steps)} · {REPEATS}x{config.folds}-fold CV · {refit} · within {config.budget:g} min"
