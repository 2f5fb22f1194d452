"""`tlbench robustness RUN_DIR --eps 0,1/255,…`: robust accuracy per eps on the run's validation split."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, add_json_flag, print_json, run_cli_job, stdout_console
from engine.core.events import JobFinished
from engine.runtime.devices import DEVICES
from engine.runtime.precision import PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("robustness", help="robust accuracy of a run per eps (PGD or FGSM), saved in its report",
                       description="Attack every validation image of a run at each eps and report the share "
                       "still classified correctly (eps 0 = clean accuracy). Saved in the run's report.json "
                       "under robustness.<method>-<norm>.")
    p.add_argument("run_dir", help="a run directory (runs/<…>)")
    p.add_argument("--data", default=None, help="the dataset (default: the one the run was trained on)")
    p.add_argument("--eps", default="0,1/255,2/255,4/255,8/255", help="comma-separated budgets in [0, 1] "
                   "pixel units")
    p.add_argument("--method", default="pgd", help="pgd | fgsm")
    p.add_argument("--norm", default="linf", help="linf | l2 (pgd)")
    p.add_argument("--steps", type=int, default=10, help="pgd steps")
    p.add_argument("--step-size", default=None, help="pgd step (default 2.5*eps/steps)")
    p.add_argument("--random-start", action="store_true")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, default=None, help="attack at most this many validation images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="autocast inside the model (the image and its gradient stay fp32); auto: bf16/fp16 "
                   "on CUDA, fp32 elsewhere")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.adversarial.robustness import RobustnessParams, parse_eps_list, robustness_job

    def job(ctx):
        params = RobustnessParams(
            run_dir=args.run_dir, data=args.data, eps=parse_eps_list(args.eps), method=args.method,
            norm=args.norm, steps=args.steps, step_size=args.step_size, random_start=args.random_start,
            batch_size=args.batch_size, limit=args.limit, seed=args.seed, device=args.device,
            precision=args.precision, workers=args.workers)
        return robustness_job(params, ctx)

    code, final, _ = run_cli_job(args, "robustness", job)
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
