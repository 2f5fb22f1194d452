"""`tlbench dream [RUN_DIR] --target CLASS`: the image a network finds most like a class."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, add_json_flag, print_json, run_cli_job, stdout_console
from engine.core.events import JobFinished
from engine.runtime.devices import DEVICES
from engine.runtime.precision import PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("dream", help="render the 'ideal' image of a class (robust or lesson recipe)",
                       description="Optimise an image from noise toward a class of a run (RUN_DIR) or of a "
                       "backbone's ImageNet head (--backbone, default efficientnet_lite0). The robust recipe "
                       "(Fourier parameterisation + random transformations) shows the class; the lesson "
                       "recipe (pixels, cross-entropy + total variation) fools only the one network.")
    p.add_argument("run_dir", nargs="?", default=None, help="a run directory (omit for --backbone)")
    p.add_argument("--target", "--class", dest="target", required=True,
                   help="class by name (case-insensitive, e.g. 'tabby cat') or index")
    p.add_argument("--backbone", default=None, help="dream with this backbone's ImageNet head")
    p.add_argument("--recipe", default="robust", help="robust (default) | lesson")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--img-size", type=int, default=None, help="image side in px (default: the model's)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (robust 0.05, lesson 0.01)")
    p.add_argument("--tv-weight", type=float, default=None,
                   help="total variation on [0, 1] pixels (lesson default 1.275 = 0.005 x 255; robust 0)")
    p.add_argument("--l2-weight", type=float, default=0.0, help="weight of sum((x - 0.5)^2)")
    p.add_argument("--jitter", type=int, default=0, help="lesson recipe: random shift up to N px per step")
    p.add_argument("--preview-every", type=int, default=25, help="preview frame every N steps (0: none)")
    p.add_argument("--eval-on", default=None, metavar="BACKBONE", help="ask a second network what it sees")
    p.add_argument("--out", default=None, help="PNG file or folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="autocast inside the model (the image and its gradient stay fp32); auto: bf16/fp16 "
                   "on CUDA, fp32 elsewhere")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.adversarial.dream_job import dream_job
    from engine.adversarial.dreams import DreamParams

    params = DreamParams(
        target=args.target, run_dir=args.run_dir, backbone=args.backbone, recipe=args.recipe, steps=args.steps,
        img_size=args.img_size, lr=args.lr, tv_weight=args.tv_weight, l2_weight=args.l2_weight,
        jitter=args.jitter, preview_every=args.preview_every, eval_on=args.eval_on, out=args.out,
        seed=args.seed, device=args.device, precision=args.precision)
    code, final, _ = run_cli_job(args, "dream", lambda ctx: dream_job(params, ctx))
    if not isinstance(final, JobFinished) or (code != EXIT_OK and not final.result):
        return code
    r = dict(final.result)
    if args.json:
        print_json(r)
        return code
    console = stdout_console()
    console.soft_wrap = True  # paths stay whole for copy and paste
    console.print(f"[bold]{r['target']['class']}[/] ({r['target']['index']}) {r['recipe']} dream, "
                  f"{r['steps']} steps in {r['seconds']:.1f}s" + (" [yellow](stopped)[/]" if r.get("stopped") else ""),
                  highlight=False)
    console.print(f"  {r['model']}: probability {r['probability']:.4f}, rank {r['rank']}", highlight=False,
                  markup=False)
    e = r.get("eval_on")
    if e:
        if "probability" in e:
            console.print(f"  {e['backbone']}: probability {e['probability']:.4f}, rank {e['rank']} "
                          f"(sees {e['top'][0]['class']} {e['top'][0]['prob']:.3f})", highlight=False, markup=False)
        else:
            console.print(f"  {e['backbone']}: sees {e['top'][0]['class']} {e['top'][0]['prob']:.3f} "
                          f"({e.get('note', '')})", highlight=False, markup=False)
    console.print(f"  saved {r['path']}", highlight=False, markup=False)
    return code
