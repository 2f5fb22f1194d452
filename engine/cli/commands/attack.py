"""`tlbench attack RUN_DIR IMAGE...` (or `--backbone NAME IMAGE...`): adversarial examples with PNGs."""

from __future__ import annotations

from engine.adversarial.attack_job import attack_job
from engine.cli.common import EXIT_OK, job_result, print_json, run_cli_job, stdout_console
from engine.cli.parsers.attack import params_from_args
from engine.core.events import JobFinished


def run(args) -> int:
    params = params_from_args(args)
    code, final, _ = run_cli_job(args, "attack", lambda ctx: attack_job(params, ctx))
    if not isinstance(final, JobFinished) or (code != EXIT_OK and not final.result):
        return code
    result = job_result(final)
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
