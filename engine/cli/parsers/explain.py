"""The flags of `tlbench explain` (engine.cli.commands.explain runs it)."""

from __future__ import annotations

import argparse

from engine.cli.common import add_json_flag
from engine.core.choices import DEVICES, EXPLAIN_METHODS


def register(sub) -> None:
    p = sub.add_parser("explain", help="heatmaps of the evidence for a class (Grad-CAM, integrated gradients, "
                       "occlusion)",
                       description="Explain a trained run's predictions (RUN_DIR IMAGE...) or a backbone's "
                       "ImageNet head's (--backbone NAME IMAGE...): per image a heatmap in [0, 1] at the image's "
                       "own resolution (NN-name-heatmap.npy) and an overlay PNG.")
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR IMAGE", help="a run directory, then image files "
                   "(with --backbone: image files only)")
    p.add_argument("--backbone", help="explain this backbone's ImageNet classifier instead of a run")
    p.add_argument("--target", help="the class to explain, by name or index (default: the predicted class)")
    p.add_argument("--method", choices=EXPLAIN_METHODS, default="gradcam",
                   help="gradcam (fast, the last stage's feature map), ig (integrated gradients, per pixel) "
                   "or occlusion (the score drop when a patch is greyed; slowest)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/explanations/<time>-<method>, or "
                   "$TLBENCH_RUNS/explanations/… with --backbone)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="explain the prediction averaged with the mirror image's, as eval and predict make it "
                   "(default: as the run recorded)")
    add_json_flag(p)
