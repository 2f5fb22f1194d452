"""`tlbench compare DATASET --backbones a,b,c`: a cross-validated leaderboard of backbones on your data, with
their speed here; writes runs/<timestamp>-<dataset>-compare/ (compare.json, tradeoff.png)."""

from __future__ import annotations

from engine.cli.common import (
    job_result,
    print_json,
    run_cli_job,
    stdout_console,
)
from engine.core.events import JobFailed
from engine.features.compare import compare, parse_candidates


def run(args) -> int:
    candidates = parse_candidates(args.backbones)  # a typo fails here, exit 2, before any work

    def job(ctx):
        return compare(args.dataset, candidates, ctx, folds=args.folds, img_size=args.img_size,
                       weights=args.weights, seed=args.seed, device=args.device, batch_size=args.batch_size,
                       workers=args.workers, runs_dir=args.runs_dir, exclude=args.exclude,
                       remeasure=args.remeasure)

    code, final, _ = run_cli_job(args, "compare", job)
    if isinstance(final, JobFailed):
        return code
    result = job_result(final)
    if args.json:
        print_json(result)
        return code
    print_table(result)
    return code


def print_table(result: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table("", "backbone", "accuracy", "top-5", "images/s", "latency", "params", "weights",
                  box=None, pad_edge=False)
    for r in result.get("results", []):
        mark = "*" if r.get("pareto") else ""
        if r.get("error"):
            table.add_row(mark, r["backbone"], Text(r["error"], "red"), "", "", "", "", r.get("weights") or "")
            continue
        # top-5 of 5 classes or fewer is 1.0000 by construction: a dash says so
        top5 = f"{r['top5']:.4f}" if (result.get("classes") or 6) > 5 else "-"
        table.add_row(mark, r["backbone"], f"{r['accuracy']:.4f} ± {r['accuracy_std']:.4f}", top5,
                      f"{r['images_per_s']:.1f}", f"{r['latency_ms']:.1f} ms" + speed_tag(r),
                      f"{r['params'] / 1e6:.1f}M",
                      r.get("weights") or "")
    console = stdout_console()
    console.print(table)
    state = "" if result.get("complete") else " [yellow](stopped: partial)[/]"
    console.print(f"[bold green]best[/] {result.get('best') or 'none'} · {result.get('folds')}-fold "
                  f"cross-validation on {result.get('images')} images{state}\n"
                  f"[dim]* on the Pareto front: no other candidate is both faster and more accurate · speeds "
                  f"timed on {speed_where(result)} (--remeasure times them again)[/]\n"
                  f"[bold]run[/] {result.get('run_dir')}  (tradeoff.png, compare.json)", highlight=False)


def speed_tag(row: dict) -> str:
    """" (busy)", " (40 d old)": a cached speed that is not to be trusted says so next to its number."""
    note = row.get("speed_note")
    return f" ({note})" if note else ""


def speed_where(result: dict) -> str:
    rows = [r for r in result.get("results", []) if r.get("speed_device")]
    return rows[0]["speed_device"] if rows else "this machine"
