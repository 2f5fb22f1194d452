"""`tlbench predict RUN_DIR IMAGE|FOLDER...`: top-k classes per image; a bad image gets its own error line."""

from __future__ import annotations

import argparse

from engine.cli.commands.eval import RUN_PRECISIONS
from engine.cli.common import EXIT_OK, add_json_flag, positive_int, print_json, stdout_console
from engine.core.runs import resolve_run_dir, runs_root
from engine.runtime.devices import DEVICES, resolve_device


def register(sub) -> None:
    p = sub.add_parser("predict", help="classify images with a trained run")
    p.add_argument("run_dir", help="a run directory (runs/<…>)")
    p.add_argument("images", nargs="+", help="image files, or folders (every image inside them, sorted)")
    p.add_argument("--top-k", type=positive_int, default=5)
    p.add_argument("--checkpoint", choices=["best.pt", "last.pt"], default="best.pt")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: average each image's logits with its mirror image's "
                   "(default: as the run recorded)")
    p.add_argument("--precision", choices=RUN_PRECISIONS, default="recorded",
                   help="compute in the run's recorded precision (default, its numbers on any machine) or this one")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.models.loading import load_run_model
    from engine.serve.predict import predict_paths

    device = resolve_device(args.device)
    run_dir = resolve_run_dir(args.run_dir, runs_root())  # a path, or a run's name, as eval and export take
    model, record = load_run_model(run_dir, device, args.checkpoint, args.precision)
    results = predict_paths(model, record, args.images, args.top_k, device, tta=args.tta)
    failed = sum(1 for r in results if "error" in r)
    if args.json:
        print_json({"run_dir": str(run_dir), "results": results, "failed": failed})
    else:
        console = stdout_console()
        for r in results:
            if "error" in r:
                console.print(f"[red]error[/] {r['path']}: {r['error']}", highlight=False)
                continue
            top = ", ".join(f"{p['class']} {p['prob']:.3f}" for p in r["predictions"])
            console.print(f"{r['path']}: {top}", highlight=False, markup=False)
    # every image was tried; a partial failure still exits non-zero so scripts notice
    return EXIT_OK if not failed else 2
