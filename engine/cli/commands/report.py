"""`tlbench report RUN [RUN…] [--out FILE.html]`: one self-contained HTML file to share a run (several runs:
a comparison page, then each run), with the `scp` line that fetches it from this machine."""

from __future__ import annotations

from engine.cli.common import job_result, print_json, run_cli_job, stdout_console
from engine.cli.reproduce import train_command
from engine.core.events import JobFailed
from engine.report.render import report_job


def run(args) -> int:
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
