"""The flags of `tlbench dream` (engine.cli.commands.dream runs it)."""

from __future__ import annotations

from engine.adversarial.params import DreamParams
from engine.cli.common import add_json_flag
from engine.cli.fields import add_dataclass_flags


def register(sub) -> None:
    p = sub.add_parser("dream", help="render the 'ideal' image of a class (maco, robust or lesson recipe)",
                       description="Optimise an image from noise toward a class of a run (RUN_DIR) or of a "
                       "backbone's ImageNet head (--backbone, default efficientnet_lite0; several, comma-separated, "
                       "form an ensemble). The maco recipe (default: only the Fourier phase is optimised under a "
                       "natural-image magnitude, many crops per step) makes images other networks recognise "
                       "(check with --eval-on); the lesson recipe (pixels, cross-entropy + total variation) "
                       "fools only the one network. Several --target classes make a gallery and a contact sheet.")
    p.add_argument("run_dir", nargs="?", default=None, help="a run directory (omit for --backbone)")
    add_dataclass_flags(p, DreamParams, skip={"run_dir"})
    add_json_flag(p)
