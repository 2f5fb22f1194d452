"""`tlbench train DATASET`: train a classifier on a pretrained backbone; writes a run directory."""

from __future__ import annotations

from engine.backbones import DEFAULT_BACKBONE
from engine.cli.common import (
    add_json_flag,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    run_cli_job,
    stdout_console,
)
from engine.config import MODES, TrainConfig
from engine.devices import DEVICES
from engine.events import JobFailed


def add_common_training_flags(p) -> None:
    """Flags shared by train and lr-find."""
    p.add_argument("dataset", help="dataset folder (see `tlbench scan`)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"pretrained backbone (default {DEFAULT_BACKBONE}; "
                   "`tlbench backbones` lists them)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--img-size", type=positive_int, default=None,
                   help="input size in px (default: the backbone's, smaller for datasets of small images)")
    p.add_argument("--val-fraction", type=fraction, default=0.2, help="validation share when tlbench splits")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--workers", type=non_negative_int, default=None, help="DataLoader workers (default: auto)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--runs-dir", default=None, help="where runs go (default $TLBENCH_RUNS or ./runs)")
    p.add_argument("--weights", default=None,
                   help="a local state dict for the backbone (loaded with weights_only=True), or 'random'")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a classifier on a frozen or fine-tuned pretrained backbone")
    add_common_training_flags(p)
    p.add_argument("--mode", choices=MODES, default="probe")
    p.add_argument("--epochs", type=positive_int, default=None, help="default: 30 for probe, fewer for the others")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    add_json_flag(p)
    p.set_defaults(func=run)


def config_from_args(args) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, backbone=args.backbone, mode=args.mode, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, img_size=args.img_size, val_fraction=args.val_fraction,
        seed=args.seed, workers=args.workers, device=args.device, runs_dir=args.runs_dir, weights=args.weights,
        weight_decay=args.weight_decay,
    )


def run(args) -> int:
    from engine.training import train

    config = config_from_args(args).validate()
    code, final, _ = run_cli_job(args, "train", lambda ctx: train(config, ctx))
    if isinstance(final, JobFailed):
        return code  # the error panel (and JSON error) is already out
    result = dict(final.result)
    if final.reason == "stopped":
        result["stopped"] = True
    if args.json:
        print_json(result)
    elif final.reason == "completed":
        r = result
        stdout_console().print(
            f"[bold green]done[/] val_acc {r['val_acc']:.4f} (best {r['best_val_acc']:.4f} at epoch "
            f"{r.get('best_epoch', '?')}), {r['train_images']} train / {r['val_images']} val images, "
            f"{r['skipped_images']} skipped, feature cache {r.get('feature_cache', '-')}, "
            f"{r['seconds']:.1f}s\n[bold]run[/] {r['run_dir']}", highlight=False)
    else:
        stdout_console().print(f"[yellow]stopped[/] run {result.get('run_dir', '(not created yet)')}", highlight=False)
    return code
