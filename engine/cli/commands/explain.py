"""`tlbench explain RUN_DIR IMAGE...` (or `--backbone NAME IMAGE...`): heatmaps of what the model looks at."""

from __future__ import annotations

from pathlib import Path

from engine.adversarial.target import load_target_model, resolve_class
from engine.cli.common import EXIT_OK, print_json, stderr_console, stdout_console
from engine.core.errors import ConfigError
from engine.core.outputs import timestamped
from engine.core.runs import runs_root
from engine.evaluate.evaluation import run_tta
from engine.evaluate.explain import explain_paths
from engine.runtime.devices import resolve_device
from engine.serve.predict import expand_folders


def run(args) -> int:
    run_dir, images = (None, args.inputs) if args.backbone else (args.inputs[0], args.inputs[1:])
    if not images:
        raise ConfigError("No images to explain: give image files (or folders) after the run directory.")
    tm = load_target_model(run_dir, args.backbone, resolve_device(args.device))
    target = resolve_class(args.target, tm.classes, tm.name) if args.target is not None else None
    base = tm.run_dir / "explanations" if tm.run_dir is not None else runs_root() / "explanations"
    out = Path(args.out).expanduser() if args.out else timestamped(base, args.method, tm.name)
    log = stderr_console().print if not args.json else None
    tta = run_tta(tm.record, args.tta) if tm.record is not None else bool(args.tta)
    results = explain_paths(tm.model, tm.classes, tm.prep, expand_folders(images), out, args.method, target,
                            log=log, tta=tta)
    failed = sum(1 for r in results if "error" in r)
    if args.json:
        print_json({"model": tm.name, "method": args.method, "out_dir": str(out), "results": results,
                    "failed": failed})
    else:
        console = stdout_console()
        console.soft_wrap = True  # paths stay whole for copy and paste
        for r in results:
            if "error" in r:
                console.print(f"[red]error[/] {r['path']}: {r['error']}", highlight=False)
            else:
                t = r["target"]
                console.print(f"{r['path']}: {t['class']} {t['prob']:.3f} -> {r['overlay']}", markup=False)
    return EXIT_OK if not failed else 2
