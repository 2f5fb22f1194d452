"""`tlbench predict RUN_DIR IMAGE|FOLDER...`: top-k classes per image; a bad image gets its own error line."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, print_json, stdout_console
from engine.core.runs import resolve_run_dir, runs_root
from engine.models.loading import load_run_model
from engine.runtime.devices import resolve_device
from engine.serve.predict import predict_paths


def run(args) -> int:
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
