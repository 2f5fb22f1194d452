"""`tlbench robustness RUN_DIR --eps 0,1/255,…`: robust accuracy per eps on the run's validation split."""

from __future__ import annotations

from engine.adversarial.params import RobustnessParams
from engine.adversarial.robustness import robustness_job
from engine.cli.common import EXIT_OK, print_json, run_cli_job, stdout_console
from engine.cli.fields import values_from_args
from engine.core.events import JobFinished


def run(args) -> int:
    params = RobustnessParams(**values_from_args(args, RobustnessParams))  # validated (and --eps read) in the job
    code, final, _ = run_cli_job(args, "robustness", lambda ctx: robustness_job(params, ctx))
    if code != EXIT_OK or not isinstance(final, JobFinished):  # (a failure's code is never EXIT_OK)
        return code
    r = final.result
    if args.json:
        print_json(r)
        return EXIT_OK
    from rich.table import Table

    table = Table("eps", "robust accuracy", "correct", box=None, pad_edge=False,
                  title=f"{r['method']} {r['norm']} on {r['images']} validation images")
    for row in r["rows"]:
        table.add_row(row["eps_text"], f"{row['accuracy']:.4f}", f"{row['correct']}/{row['images']}")
    console = stdout_console()
    console.soft_wrap = True  # paths stay whole for copy and paste
    console.print(table)
    console.print(f"saved in {r['run_dir']}/report.json (robustness.{r['key']})", highlight=False)
    return EXIT_OK
