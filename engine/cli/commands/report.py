"""`tlbench report RUN [RUN…] [--out FILE.html]`: one self-contained HTML file to share a run (several runs:
a comparison page, then each run), with the `scp` line that fetches it from this machine."""

from __future__ import annotations

from engine.cli.common import add_json_flag, job_result, print_json, run_cli_job, stdout_console
from engine.core.events import JobFailed


def register(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report of a run, or a comparison of several, to "
                       "share (opens offline in any browser)",
                       description="Write one HTML file with everything a reviewer asks about a run: the recipe and "
                       "the command that reproduces it, the dataset and its split, device, precision, versions, "
                       "curves, the confusion matrix, per-class metrics, the top losses with Grad-CAM, robustness, "
                       "attacks, dreams and the dataset audit's suspects. Images are embedded; nothing is loaded "
                       "from the network.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their names under the runs folder); "
                   "several make a comparison page first")
    p.add_argument("--out", metavar="FILE.html", help="where to write it (default: RUN/report.html; for several "
                   "runs <runs folder>/<time>-compare-N-runs.html); a folder gets report.html inside")
    p.add_argument("--no-gradcam", dest="gradcam", action="store_false",
                   help="leave out the Grad-CAM overlays of the top losses (they load the run's model on the CPU)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    # torch (the Grad-CAM model) and jinja2 are imported here: kept off the `--help` path
    from engine.cli.reproduce import train_command
    from engine.report.render import report_job

    code, final, _ = run_cli_job(args, "report", lambda ctx: report_job(args.runs, args.out, ctx, train_command,
                                                                        args.gradcam))
    if isinstance(final, JobFailed):
        return code  # the error panel (and the JSON error) is out
    result = job_result(final)
    if args.json:
        print_json(result)
    elif final.reason == "completed":
        console = stdout_console()
        console.soft_wrap = True  # the path and the scp line stay whole for copy and paste
        console.print(f"[bold]report[/] {result['path']} ({result['bytes'] / 1e6:.2f} MB)\n"
                      f"[bold]fetch it[/] {result['scp']}", highlight=False)
    return code
