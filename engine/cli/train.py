"""`tlbench train DATASET`: train a classifier on a pretrained backbone; writes a run directory.

`tlbench train --resume RUN_DIR` continues a stopped run. Under `torchrun --nproc_per_node=N` every process
runs this command; rank 0 alone prints and writes.
"""

from __future__ import annotations

import argparse

from engine.cli.common import (
    add_json_flag,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    report_failure,
    run_cli_job,
    stdout_console,
)
from engine.core.errors import ConfigError
from engine.core.events import JobFailed
from engine.models.registry import DEFAULT_BACKBONE
from engine.runtime.devices import DEVICES
from engine.runtime.precision import PRECISIONS
from engine.train.config import AUGMENTS, MODES, OPTIMIZERS, TrainConfig


def add_common_training_flags(p, dataset_optional: bool = False) -> None:
    """Flags shared by train and lr-find."""
    if dataset_optional:
        p.add_argument("dataset", nargs="?", help="dataset folder (see `tlbench scan`)")
    else:
        p.add_argument("dataset", help="dataset folder (see `tlbench scan`)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"pretrained backbone (default {DEFAULT_BACKBONE}; "
                   "`tlbench backbones` lists them)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per step (per process under torchrun)")
    p.add_argument("--img-size", type=positive_int, default=None,
                   help="input size in px (default: the backbone's, smaller for datasets of small images)")
    p.add_argument("--val-fraction", type=fraction, default=0.2, help="validation share when tlbench splits")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--workers", type=non_negative_int, default=None, help="DataLoader workers (default: auto)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--runs-dir", default=None, help="where runs go (default $TLBENCH_RUNS or ./runs)")
    p.add_argument("--weights", default=None,
                   help="a local state dict for the backbone (loaded with weights_only=True), or 'random'")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="adamw | sgd (momentum 0.9)")
    p.add_argument("--unfreeze", type=positive_int, default=2,
                   help="partial mode: how many of the backbone's last stages train (named in the log)")
    p.add_argument("--label-smoothing", type=non_negative_float, default=0.0, help="0 to below 1, e.g. 0.1")
    p.add_argument("--augment", choices=AUGMENTS, default="light",
                   help="none | light (random resized crop + flip) | strong (+ TrivialAugment, random erasing)")
    p.add_argument("--train-bn", action="store_true",
                   help="update BatchNorm running statistics in trained stages (for large datasets; by default "
                   "they stay ImageNet's while the BatchNorm scale and shift train)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="autocast dtype of the forward passes (default auto: bf16 on a CUDA GPU that has it, "
                   "fp16 on older ones, fp32 on CPU and MPS); fp16 adds a loss scaler")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="--no-amp is --precision fp32 (kept for older commands)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on CUDA and CPU, where it is faster; off on MPS)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a classifier on a frozen or fine-tuned pretrained backbone")
    add_common_training_flags(p, dataset_optional=True)
    p.add_argument("--mode", choices=MODES, default="probe",
                   help="probe | head | partial | full (see the README's Fine-tuning section)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default: 30 for probe, 5 for head and partial, 6 for full")
    p.add_argument("--lr", type=positive_float, default=1e-3,
                   help="peak learning rate of the head (the backbone's stages get less in partial and full)")
    p.add_argument("--freeze-epochs", type=non_negative_int, default=1,
                   help="full mode: epochs with the backbone frozen before everything is unfrozen")
    p.add_argument("--grad-clip", type=positive_float, default=None, help="clip the gradient norm to this value")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="early stopping: epochs without a better validation accuracy")
    p.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard scalars to RUN/tensorboard (needs the tensorboard package)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue a stopped run from its last.pt, with the settings it recorded")
    add_json_flag(p)
    p.set_defaults(func=run)


def config_from_args(args) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, backbone=args.backbone, mode=args.mode, epochs=getattr(args, "epochs", None),
        batch_size=args.batch_size, lr=getattr(args, "lr", 1e-3), img_size=args.img_size,
        val_fraction=args.val_fraction, seed=args.seed, workers=args.workers, device=args.device,
        runs_dir=args.runs_dir, weights=args.weights, weight_decay=args.weight_decay, optimizer=args.optimizer,
        label_smoothing=args.label_smoothing, augment=args.augment, unfreeze=args.unfreeze,
        freeze_epochs=getattr(args, "freeze_epochs", 1), train_bn=args.train_bn, precision=args.precision,
        amp=args.amp, channels_last={None: "auto", True: "on", False: "off"}[args.channels_last],
        grad_clip=getattr(args, "grad_clip", None), patience=getattr(args, "patience", None),
        tensorboard=getattr(args, "tensorboard", False),
    )


def run(args) -> int:
    from engine.runtime.distributed import env_info
    from engine.train.job import resume, train

    main_rank = env_info().is_main
    if args.resume:
        job = lambda ctx: resume(args.resume, ctx, device=args.device if args.device != "auto" else None,  # noqa: E731
                                 workers=args.workers, runs_dir=args.runs_dir)
    else:
        if not args.dataset:
            return report_failure(args, ConfigError("No dataset given: pass a dataset folder, "
                                                    "or --resume RUN_DIR to continue a run."))
        config = config_from_args(args).validate()
        job = lambda ctx: train(config, ctx)  # noqa: E731
    code, final, _ = run_cli_job(args, "train", job, quiet=not main_rank)
    if isinstance(final, JobFailed):
        return code  # the error panel (and JSON error) is already out
    if not main_rank:
        return code
    result = dict(final.result)
    if final.reason == "stopped":
        result["stopped"] = True
    if args.json:
        print_json(result)
    elif final.reason == "completed":
        r = result
        extra = (f"feature cache {r['feature_cache']}" if "feature_cache" in r
                 else f"{r.get('images_per_s') or 0:.1f} img/s")
        stdout_console().print(
            f"[bold green]done[/] val_acc {r['val_acc']:.4f} (best {r['best_val_acc']:.4f} at epoch "
            f"{r.get('best_epoch', '?')}), {r['train_images']} train / {r['val_images']} val images, "
            f"{r['skipped_images']} skipped, {extra}, {r['seconds']:.1f}s\n"
            f"[bold]run[/] {r['run_dir']}  (report: tlbench eval {r['run_dir']})", highlight=False)
    else:
        where = result.get("run_dir")
        stdout_console().print(f"[yellow]stopped[/] run {where or '(not created yet)'}"
                               + (f"\ncontinue with: tlbench train --resume {where}" if where else ""),
                               highlight=False)
    return code
