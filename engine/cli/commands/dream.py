"""`tlbench dream [RUN_DIR] --target CLASS`: the image a network finds most like a class."""

from __future__ import annotations

from engine.adversarial.params import DreamParams
from engine.cli.common import EXIT_OK, add_json_flag, print_json, run_cli_job, stdout_console
from engine.cli.fields import add_dataclass_flags, values_from_args
from engine.core.events import JobFinished


def register(sub) -> None:
    p = sub.add_parser("dream", help="render the 'ideal' image of a class (robust or lesson recipe)",
                       description="Optimise an image from noise toward a class of a run (RUN_DIR) or of a "
                       "backbone's ImageNet head (--backbone, default efficientnet_lite0). The robust recipe "
                       "(Fourier parameterisation + random transformations) shows the class; the lesson "
                       "recipe (pixels, cross-entropy + total variation) fools only the one network.")
    p.add_argument("run_dir", nargs="?", default=None, help="a run directory (omit for --backbone)")
    add_dataclass_flags(p, DreamParams, skip={"run_dir"})
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.adversarial.dream_job import dream_job  # imports torch: kept off the `--help` path

    params = DreamParams(**values_from_args(args, DreamParams))
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
