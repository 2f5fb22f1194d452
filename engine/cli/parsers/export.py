"""The flags of `tlbench export` (engine.cli.commands.export runs it)."""

from __future__ import annotations

import argparse

from engine.cli.common import add_json_flag
from engine.serve import EXPORT_FORMATS


def register(sub) -> None:
    p = sub.add_parser("export", help="export a run's model to torch.export (pt2), ONNX or TorchScript "
                                        "(preprocessing and classes inside)")
    p.add_argument("run_dir", help="a run directory (runs/<…>)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="pt2",
                   help="pt2 (default: torch.export, load with torch.export.load), onnx (needs pip install "
                        "'tlbench[onnx]') or torchscript (legacy, deprecated upstream)")
    p.add_argument("--output", default=None,
                   help="file to write (default RUN/export/model.pt2, model.onnx or model.pt)")
    p.add_argument("--checkpoint", choices=["best.pt", "last.pt"], default="best.pt")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: average each image's logits with its mirror image's "
                   "(default: as the run recorded)")
    add_json_flag(p)
