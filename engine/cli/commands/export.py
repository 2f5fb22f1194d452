"""`tlbench export RUN_DIR --format pt2|onnx|torchscript`: a self-contained model (preprocessing, class names)."""

from __future__ import annotations

from engine.cli.common import print_json, run_cli_job, stdout_console
from engine.core.events import JobFailed
from engine.core.runs import resolve_run_dir, runs_root
from engine.serve.export import export_run


def run(args) -> int:
    run_dir = resolve_run_dir(args.run_dir, runs_root())
    code, final, _ = run_cli_job(args, "export", lambda ctx: export_run(
        run_dir, args.format, ctx, args.output, args.checkpoint, args.tta))
    if isinstance(final, JobFailed) or final.reason != "completed":
        return code
    r = final.result
    if args.json:
        print_json(r)
    else:
        console = stdout_console()
        console.soft_wrap = True  # paths stay whole for copy and paste
        console.print(f"[bold green]exported[/] {r['path']} ({r['bytes'] / 1e6:.1f} MB, {len(r['classes'])} classes)",
                      highlight=False)
        console.print(f"  probabilities within {r['max_abs_diff']:.1e} of tlbench predict "
                      f"({r['checked_images']} {r['checked_on']})", highlight=False, markup=False)
    return code
