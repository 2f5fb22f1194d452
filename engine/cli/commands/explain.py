"""`tlbench explain RUN_DIR IMAGE...` (or `--backbone NAME IMAGE...`): heatmaps of what the model looks at."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import EXIT_OK, add_json_flag, print_json, stderr_console, stdout_console
from engine.core.outputs import timestamped
from engine.core.runs import runs_root
from engine.runtime.devices import DEVICES, resolve_device

METHODS = ("gradcam", "ig", "occlusion")  # engine.evaluate.explain.METHODS (that module imports torch)


def register(sub) -> None:
    p = sub.add_parser("explain", help="heatmaps of the evidence for a class (Grad-CAM, integrated gradients, "
                       "occlusion)",
                       description="Explain a trained run's predictions (RUN_DIR IMAGE...) or a backbone's "
                       "ImageNet head's (--backbone NAME IMAGE...): per image a heatmap in [0, 1] at the image's "
                       "own resolution (NN-name-heatmap.npy) and an overlay PNG.")
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR IMAGE", help="a run directory, then image files "
                   "(with --backbone: image files only)")
    p.add_argument("--backbone", help="explain this backbone's ImageNet classifier instead of a run")
    p.add_argument("--target", help="the class to explain, by name or index (default: the predicted class)")
    p.add_argument("--method", choices=METHODS, default="gradcam",
                   help="gradcam (fast, the last stage's feature map), ig (integrated gradients, per pixel) "
                   "or occlusion (the score drop when a patch is greyed; slowest)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/explanations/<time>-<method>, or "
                   "$TLBENCH_RUNS/explanations/… with --backbone)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="explain the prediction averaged with the mirror image's, as eval and predict make it "
                   "(default: as the run recorded)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    # the model loader imports torch: kept off the `--help` path
    from engine.adversarial.target import load_target_model, resolve_class
    from engine.core.errors import ConfigError
    from engine.evaluate.evaluation import run_tta
    from engine.evaluate.explain import explain_paths
    from engine.serve.predict import expand_folders

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
