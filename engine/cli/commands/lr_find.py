"""`tlbench lr-find DATASET`: the learning-rate range test; suggests --lr, saves the curve (PNG and JSON)."""

from __future__ import annotations

from engine.cli.commands.train import DATASET_HELP, config_from_args
from engine.cli.common import (
    add_json_flag,
    positive_float,
    positive_int,
    print_json,
    run_cli_job,
    stdout_console,
)
from engine.cli.fields import add_dataclass_flags
from engine.core.events import JobFailed
from engine.train.config import TrainConfig

# The range test runs a fixed number of steps at a swept learning rate: no epochs, no lr, no early stopping.
NOT_FLAGS = {"dataset", "epochs", "lr", "freeze_epochs", "grad_clip", "patience", "tensorboard"}


def register(sub) -> None:
    p = sub.add_parser("lr-find", help="learning-rate range test: suggests --lr, saves the curve")
    p.add_argument("dataset", help=DATASET_HELP)
    add_dataclass_flags(p, TrainConfig, skip=NOT_FLAGS, flags={"mode": {
        "choices": ["head", "partial", "full"], "default": "full",
        "help": "the parameters the test trains: as the mode's first phase (default full: the head)"}})
    p.add_argument("--start-lr", type=positive_float, default=1e-7)
    p.add_argument("--end-lr", type=positive_float, default=10.0)
    p.add_argument("--steps", type=positive_int, default=100, help="steps of the test (50-200)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.runtime.distributed import env_info
    from engine.train.lr_find import lr_find
    from engine.train.prepare import check_config

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
