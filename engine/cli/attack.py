"""`tlbench attack RUN_DIR IMAGE...` (or `--backbone NAME IMAGE...`): adversarial examples with PNGs."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, add_json_flag, print_json, run_cli_job, stdout_console
from engine.core.events import JobFinished
from engine.runtime.devices import DEVICES
from engine.runtime.precision import PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("attack", help="make adversarial examples (FGSM, PGD L-inf/L2, the lesson's descent)",
                       description="Attack images against a trained run (RUN_DIR IMAGE...) or a backbone's "
                       "ImageNet head (--backbone NAME IMAGE...). eps and step sizes are in [0, 1] pixel units: "
                       "4/255 lets each pixel move 4 grey levels.")
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR IMAGE", help="a run directory, then image files "
                   "(with --backbone: image files only)")
    p.add_argument("--backbone", default=None, help="attack this backbone's ImageNet head instead of a run")
    p.add_argument("--method", default="pgd", help="pgd | fgsm | gd (the lesson's unbounded gradient descent)")
    p.add_argument("--norm", default="linf", help="linf | l2 (pgd)")
    p.add_argument("--eps", default="4/255", help="budget in [0, 1] pixel units, e.g. 4/255 (default) or 0.5 "
                   "for l2; gd ignores it")
    p.add_argument("--step-size", default=None, help="pgd: default 2.5*eps/steps; gd: learning rate (0.05)")
    p.add_argument("--steps", type=int, default=None, help="pgd 10, gd 100 by default")
    p.add_argument("--random-start", action="store_true", help="pgd: start at a random point of the eps-ball")
    p.add_argument("--target", default=None, help="class to reach, by name (case-insensitive) or index; "
                   "without it the attack moves away from the predicted class")
    p.add_argument("--tv-weight", type=float, default=0.0, help="gd: total-variation weight on [0, 1] pixels")
    p.add_argument("--eval-on", default=None, metavar="BACKBONE",
                   help="also classify the adversarial images with this backbone (transfer check)")
    p.add_argument("--out", default=None, help="folder for the PNGs and summary.json")
    p.add_argument("--img-size", type=int, default=None, help="input size in px (default: the model's)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="autocast inside the model (the image and its gradient stay fp32); auto: bf16/fp16 "
                   "on CUDA, fp32 elsewhere")
    add_json_flag(p)
    p.set_defaults(func=run)


def params_from_args(args):
    from engine.adversarial.attack_job import AttackParams

    run_dir, images = (None, args.inputs) if args.backbone else (args.inputs[0], args.inputs[1:])
    return AttackParams(
        images=images, run_dir=run_dir, backbone=args.backbone, method=args.method, norm=args.norm,
        eps=args.eps, step_size=args.step_size, steps=args.steps, random_start=args.random_start,
        target=args.target, tv_weight=args.tv_weight, eval_on=args.eval_on, out=args.out,
        img_size=args.img_size, top_k=args.top_k, seed=args.seed, device=args.device,
        precision=args.precision,
    )


def run(args) -> int:
    from engine.adversarial.attack_job import attack_job

    params = params_from_args(args)
    code, final, _ = run_cli_job(args, "attack", lambda ctx: attack_job(params, ctx))
    if not isinstance(final, JobFinished) or (code != EXIT_OK and not final.result):
        return code
    result = dict(final.result)
    if final.reason == "stopped":
        result["stopped"] = True
    if args.json:
        print_json(result)
    else:
        show(result)
    if code != EXIT_OK:
        return code
    return EXIT_OK if not result.get("failed") else 2


def show(result: dict) -> None:
    console = stdout_console()
    console.soft_wrap = True  # paths stay whole for copy and paste
    for r in result.get("results", []):
        if "error" in r:
            console.print(f"[red]error[/] {r['path']}: {r['error']}", highlight=False)
            continue
        before, after = r["before"][0], r["after"][0]
        verdict = "[green]fooled[/]" if r["success"] else "[yellow]held[/]"
        console.print(f"[bold]{r['path']}[/] {verdict}", highlight=False)
        console.print(f"  before  {before['class']} {before['prob']:.3f}", highlight=False, markup=False)
        console.print(f"  after   {after['class']} {after['prob']:.3f}"
                      + (f"   target {r['target_prob']:.3f}" if "target_prob" in r else ""),
                      highlight=False, markup=False)
        console.print(f"  L-inf {r['linf_255']:.2f}/255   L2 {r['l2']:.3f}   saved PNG: {r['png']['class']} "
                      f"{r['png']['prob']:.3f}", highlight=False, markup=False)
        if "eval_on" in r:
            e = r["eval_on"]
            console.print(f"  on {e['backbone']}: {e['before'][0]['class']} {e['before'][0]['prob']:.3f} -> "
                          f"{e['after'][0]['class']} {e['after'][0]['prob']:.3f}"
                          + (" (transferred)" if e.get("success") else " (did not transfer)"),
                          highlight=False, markup=False)
    if result.get("out_dir"):
        console.print(f"[bold]{result.get('succeeded', 0)}/{result.get('attacked', 0)}[/] fooled; PNGs in "
                      f"{result['out_dir']}", highlight=False)
