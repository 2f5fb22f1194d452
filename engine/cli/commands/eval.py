"""`tlbench eval RUN_DIR [--data DATASET]`: accuracy, top-5, per-class metrics, confusion, top losses.

Writes report.json, confusion.png and top_losses.png into the run; --json prints the summary object.
"""

from __future__ import annotations

from engine.cli.common import (
    print_json,
    run_cli_job,
    stdout_console,
)
from engine.core.events import JobFailed
from engine.core.files import read_json
from engine.core.runs import resolve_run_dir, runs_root
from engine.evaluate.evaluation import evaluate_run


def run(args) -> int:
    run_dir = resolve_run_dir(args.run_dir, runs_root())
    code, final, _ = run_cli_job(args, "eval", lambda ctx: evaluate_run(
        run_dir, args.data, ctx, args.checkpoint, args.device, args.batch_size, args.workers, args.tta,
        args.precision, args.replan))
    if isinstance(final, JobFailed) or final.reason != "completed":
        return code
    result = final.result
    if args.json:
        print_json(result)
        return code
    report = read_json(run_dir / "report.json")
    from rich.table import Table

    console = stdout_console()
    if report["accuracy"] is None:
        console.print(f"no usable images to evaluate ({report['split']})")
        return code
    top5 = f", top-5 {report['top5']:.4f}" if report.get("top5") is not None else ""
    console.print(f"[bold]accuracy[/] {report['accuracy']:.4f}{top5} on {report['n']} images ({report['split']})")
    table = Table("class", "precision", "recall", "F1", "support", box=None)
    for row in report["per_class"]:
        table.add_row(row["class"], *(f"{row[k]:.3f}" if row.get(k) is not None else "-"
                                      for k in ("precision", "recall", "f1")), str(row["support"]))
    console.print(table)
    if report["most_confused"]:
        console.print("[bold]most confused[/] (true -> predicted: count)")
        for pair in report["most_confused"][:10]:
            console.print(f"  {pair['true']} -> {pair['predicted']}: {pair['count']}", markup=False)
    console.print(f"[bold]report[/] {run_dir / 'report.json'}  (confusion.png, top_losses.png)", highlight=False)
    return code
