"""`tlbench export RUN_DIR --format pt2|onnx|torchscript`: a self-contained model (preprocessing, class names)."""

from __future__ import annotations

import argparse

from engine.cli.common import add_json_flag, print_json, run_cli_job, stdout_console
from engine.core.events import JobFailed
from engine.serve import EXPORT_FORMATS


def register(sub) -> None:
    p = sub.add_parser("export", help="export a run's model to torch.export (pt2), ONNX or TorchScript "
                                        "(preprocessing and classes inside)")
    p.add_argument("run_dir", help="a run directory (runs/<…>)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="pt2",
                   help="pt2 (default: torch.export, load with torch.export.load), onnx (needs pip install "
                        "'tlbench[onnx]') or torchscript (legacy, deprecated upstream)")
    p.add_argument("--output", default=None,
                   help="file to write (default RUN/export/model.pt2, model.onnx or model.pt)")
    p.add_argument("--checkpoint", choices=["best.pt", "last.pt"], default="best.pt")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: average each image's logits with its mirror image's "
                   "(default: as the run recorded)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.core.runs import resolve_run_dir, runs_root
    from engine.serve.export import export_run

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
