"""`tlbench dream [RUN_DIR] --target CLASS[,CLASS…]`: the image a network finds most like a class; several
classes make a gallery with a contact sheet."""

from __future__ import annotations

from engine.adversarial.params import DreamParams
from engine.cli.common import EXIT_OK, add_json_flag, print_json, run_cli_job, stdout_console
from engine.cli.fields import add_dataclass_flags, values_from_args
from engine.core.events import JobFinished


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
    p.set_defaults(func=run)


def _judged(console, r: dict) -> None:
    for e in r.get("eval_on", []):
        top = e["top"][0]
        if "probability" in e:
            console.print(f"  {e['backbone']}: probability {e['probability']:.4f}, rank {e['rank']} "
                          f"(sees {top['class']} {top['prob']:.3f})", highlight=False, markup=False)
        else:
            console.print(f"  {e['backbone']}: sees {top['class']} {top['prob']:.3f} ({e.get('note', '')})",
                          highlight=False, markup=False)


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
    stopped = " [yellow](stopped)[/]" if r.get("stopped") else ""
    for d in r.get("dreams", [r]):
        console.print(f"[bold]{d['target']['class']}[/] ({d['target']['index']}) {d['recipe']} dream, "
                      f"{d['steps']} steps in {d['seconds']:.1f}s" + stopped, highlight=False)
        console.print(f"  {d['model']}: probability {d['probability']:.4f}, rank {d['rank']}", highlight=False,
                      markup=False)
        _judged(console, d)
        console.print(f"  saved {d['path']}", highlight=False, markup=False)
    if "dreams" in r:
        recognised = (f"; {r['recognised']} of {r['judged']} ranked first by the first judge"
                      if "recognised" in r else "")
        console.print(f"contact sheet: {r['contact_sheet']}{recognised}", highlight=False, markup=False)
    return code
