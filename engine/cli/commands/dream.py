"""`tlbench dream [RUN_DIR] --target CLASS[,CLASS…]`: the image a network finds most like a class; several
classes make a gallery with a contact sheet."""

from __future__ import annotations

from engine.adversarial.dream_job import dream_job
from engine.adversarial.params import DreamParams
from engine.cli.common import EXIT_OK, print_json, run_cli_job, stdout_console
from engine.cli.fields import values_from_args
from engine.core.events import JobFinished


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
