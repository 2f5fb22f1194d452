"""`tlbench audit DATASET`: likely label errors, duplicates, outliers and class imbalance; the dataset is only read."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, print_json, run_cli_job, stdout_console
from engine.core.events import JobFinished
from engine.features.audit_job import AuditParams, audit_job

SHOWN = 10  # rows per section in the text report; --json has them all


def run(args) -> int:
    params = AuditParams(args.dataset, args.backbone, args.folds, args.seed, args.val_fraction,
                         img_size=args.img_size, weights=args.weights, device=args.device, workers=args.workers,
                         runs_dir=args.runs_dir)
    if args.similarity is not None:
        params.similarity = args.similarity
    code, final, _ = run_cli_job(args, "audit", lambda ctx: audit_job(params, ctx))
    if code != EXIT_OK or not isinstance(final, JobFinished):
        return code
    if args.json:
        print_json(final.result)
    else:
        show(final.result)
    return EXIT_OK


def show(r: dict) -> None:
    console = stdout_console()
    console.soft_wrap = True  # paths stay whole for copy and paste
    out = lambda text: console.print(text, highlight=False, markup=False)  # noqa: E731
    out(f"{r['images']} images in {r['dataset']} ({r['backbone']}, {r['folds']}-fold accuracy "
        f"{r['cv_accuracy']:.3f})")
    out(f"\nlabel suspects: {len(r['label_issues'])} (labels a cross-validated probe on {r['backbone']} disagrees "
        "with: check them; another backbone suspects others)")
    for i in r["label_issues"][:SHOWN]:
        out(f"  {i['score']:.3f}  {i['path']}  labelled {i['given']}, looks like {i['suggested']}")
    out(f"\nduplicate groups: {len(r['duplicates'])} ({r['leaking_groups']} across the train/validation split)")
    for d in r["duplicates"][:SHOWN]:
        flags = [f for f, on in (("exact" if d["exact"] else "near", True), ("LEAK", d["across_split"]),
                                 ("labels differ", d["conflicting_labels"])) if on]
        out(f"  {d['similarity']:.3f} {' '.join(flags)}: " + "  ".join(d["paths"]))
    out(f"\noutliers: {len(r['outliers'])}")
    for o in r["outliers"][:SHOWN]:
        out(f"  {o['score']:.3f}  {o['path']} (nearest class {o['nearest']})")
    b = r["imbalance"]
    out("\nclasses: " + ", ".join(f"{c} {n}" for c, n in b["counts"].items())
        + (f"  (imbalanced: {b['ratio']:.1f}x)" if b["imbalanced"] else ""))
    out(f"\naudit: {r['run_dir']}/audit.json. Nothing was changed. To leave files out of training, mark them in "
        f"the workbench's Audit view (Data screen, a) or list them in {r['exclude_file']}: training skips "
        "them (`tlbench train --exclude FILE` for another list, --exclude none for none).")
