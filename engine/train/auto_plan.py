"""What `--mode auto` will search, in one line, before it runs: the workbench's summary under the form says it
instead of a backbone and epochs that auto does not use (issue 24 item 5).

The words come from the search's own constants and its own choice of backbones (engine.train.auto.recipes and
.search), so a change to the search space changes the line; nothing outside this module spells the search out.
"""

from __future__ import annotations

from engine.core.errors import TlbenchError
from engine.train.auto.recipes import AUG_VIEWS, L2_GRID, SCALE, SMOOTHING, search_backbones
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
    """'searches efficientnet_lite2, lite1, lite0 and a+b; 1.25x input; flip, ten-crop TTA; 4 crop views; head L2
    (5); smoothing 0.1; ensemble · 3 x 5-fold CV · within 15 min'. Stages the settings fix are left out or say
    so."""
    try:
        backbones = search_backbones(config)
    except TlbenchError as err:
        return err.message
    steps = [f"searches {short_names(backbones)}" + (" and a+b" if len(backbones) > 1 else "")]
    if config.img_size is None:
        steps.append(f"{SCALE:g}x input")
    else:
        steps.append(f"at {config.img_size} px")
    steps.append("flip, ten-crop TTA")
    steps.append(f"{config.aug_views or AUG_VIEWS} crop views")
    steps.append(f"head L2 {config.head_l2:g}" if config.head_l2 is not None else f"head L2 ({len(L2_GRID)})")
    if not config.label_smoothing:
        steps.append(f"smoothing {SMOOTHING:g}")
    steps.append("ensemble")
    held = f" · {config.holdout:.0%} held out" if config.holdout else ""
    return f"{'; '.join(steps)} · {REPEATS} x {config.folds}-fold CV{held} · within {config.budget:g} min"
