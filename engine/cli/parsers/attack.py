"""The flags of `tlbench attack` (engine.cli.commands.attack runs it)."""

from __future__ import annotations

from engine.adversarial.params import AttackParams
from engine.cli.common import add_json_flag
from engine.cli.fields import add_dataclass_flags, values_from_args


def register(sub) -> None:
    p = sub.add_parser("attack", help="make adversarial examples (FGSM, PGD L-inf/L2, the lesson's descent)",
                       description="Attack images against a trained run (RUN_DIR IMAGE...) or a backbone's "
                       "ImageNet head (--backbone NAME IMAGE...). eps and step sizes are in [0, 1] pixel units: "
                       "4/255 lets each pixel move 4 grey levels.")
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR IMAGE", help="a run directory, then image files "
                   "(with --backbone: image files only)")
    add_dataclass_flags(p, AttackParams, skip={"images", "run_dir"})  # both come from the inputs
    add_json_flag(p)


def params_from_args(args) -> AttackParams:
    """The attack the arguments describe: with --backbone every input is an image, else the first is the run."""
    run_dir, images = (None, args.inputs) if args.backbone else (args.inputs[0], args.inputs[1:])
    return AttackParams(images=images, run_dir=run_dir, **values_from_args(args, AttackParams))
