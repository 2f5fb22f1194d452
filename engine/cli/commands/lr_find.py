"""`tlbench lr-find DATASET`: the learning-rate range test; suggests --lr, saves the curve (PNG and JSON)."""

from __future__ import annotations

from engine.cli.common import (
    print_json,
    run_cli_job,
    stdout_console,
)
from engine.cli.parsers.train import config_from_args
from engine.core.events import JobFailed
from engine.runtime.distributed import env_info
from engine.train.lr_find import lr_find
from engine.train.prepare import check_config


def run(args) -> int:
    main_rank = env_info().is_main  # under torchrun rank 0 alone reports: one JSON object on stdout
    config = check_config(config_from_args(args))
    code, final, _ = run_cli_job(args, "lr-find", lambda ctx: lr_find(config, ctx, args.start_lr, args.end_lr,
                                                                      args.steps), quiet=not main_rank)
    if isinstance(final, JobFailed) or final.reason != "completed" or not main_rank:
        return code
    r = final.result
    if args.json:
        print_json(r)
    else:
        lr = f"{r['suggested_lr']:.1e}" if r["suggested_lr"] else "none (the loss did not fall)"
        stdout_console().print(f"[bold green]suggested --lr[/] {lr}\n[bold]curve[/] {r['curve']}  "
                               f"[bold]data[/] {r['data']}", highlight=False)
    return code
