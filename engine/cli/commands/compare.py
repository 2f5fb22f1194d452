"""`tlbench compare DATASET --backbones a,b,c`: a cross-validated leaderboard of backbones on your data, with
their speed here; writes runs/<timestamp>-<dataset>-compare/ (compare.json, tradeoff.png)."""

from __future__ import annotations

from engine.cli.commands.train import DATASET_HELP
from engine.cli.common import (
    add_json_flag,
    job_result,
    non_negative_int,
    positive_int,
    print_json,
    run_cli_job,
    stdout_console,
)
from engine.core.events import JobFailed
from engine.runtime.devices import DEVICES


def register(sub) -> None:
    p = sub.add_parser("compare", help="rank backbones on a dataset: cross-validated accuracy and speed")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--backbones", required=True, metavar="A,B,C",
                   help="comma-separated backbones; a+b concatenates their features "
                        "(e.g. efficientnet_lite0,efficientnet_lite1,efficientnet_lite0+efficientnet_lite1)")
    p.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--img-size", type=positive_int, default=None,
                   help="input size in px (default: each backbone's, less for small images, as the probe)")
    p.add_argument("--weights", default=None,
                   help="'random' for untrained backbones (a test of the pipeline, not of the backbones)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the folds (default 0)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per extraction batch")
    p.add_argument("--workers", type=non_negative_int, default=None, help="DataLoader workers")
    p.add_argument("--runs-dir", default=None, help="where the run directory goes (default $TLBENCH_RUNS or ./runs)")
    p.add_argument("--exclude", default="auto", metavar="auto|none|FILE",
                   help="images left out of the comparison: auto (the dataset's exclude list, if marked), none, "
                   "or a file with one path per line, as `train --exclude` takes it")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.features.compare import compare, parse_candidates  # imports torch: kept off the `--help` path

    candidates = parse_candidates(args.backbones)  # a typo fails here, exit 2, before any work

    def job(ctx):
        return compare(args.dataset, candidates, ctx, folds=args.folds, img_size=args.img_size,
                       weights=args.weights, seed=args.seed, device=args.device, batch_size=args.batch_size,
                       workers=args.workers, runs_dir=args.runs_dir, exclude=args.exclude)

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
        table.add_row(mark, r["backbone"], f"{r['accuracy']:.4f} ± {r['accuracy_std']:.4f}", f"{r['top5']:.4f}",
                      f"{r['images_per_s']:.1f}", f"{r['latency_ms']:.1f} ms", f"{r['params'] / 1e6:.1f}M",
                      r.get("weights") or "")
    console = stdout_console()
    console.print(table)
    state = "" if result.get("complete") else " [yellow](stopped: partial)[/]"
    console.print(f"[bold green]best[/] {result.get('best') or 'none'} · {result.get('folds')}-fold "
                  f"cross-validation on {result.get('images')} images{state}\n"
                  f"[dim]* on the Pareto front: no other candidate is both faster and more accurate[/]\n"
                  f"[bold]run[/] {result.get('run_dir')}  (tradeoff.png, compare.json)", highlight=False)
