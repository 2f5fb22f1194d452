"""Training configuration: every hyperparameter, validated with errors that name the value and the fix.

Part of the spec layer: no torch here (an import-linter contract), so `tlbench train --help` and the
workbench's form read these fields in milliseconds. validate() checks the values themselves; whether the
backbone exists is the registry's answer, asked where the config meets the engine
(engine.train.prepare.check_config).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from engine.core.checks import (
    check_number,
    check_whole,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from engine.core.choices import DEVICES, GROUP_DUPLICATES, PRECISIONS
from engine.core.errors import ConfigError, choice_error
from engine.core.settings import setting
from engine.models.spec import DEFAULT_BACKBONE

MODES = ("probe", "head", "partial", "full", "auto")
# Probe epochs cost milliseconds (the features are cached); the other modes run the backbone every epoch.
# auto fits its head in one solve (engine.evaluate.crossval.fit_linear): its "epoch" is that solve.
DEFAULT_EPOCHS = {"probe": 30, "head": 5, "partial": 5, "full": 6, "auto": 1}

MODE_HELP = {
    "probe": "frozen backbone; features extracted once and cached; a linear head trained on them (fastest)",
    "head": "frozen backbone (BatchNorm kept in eval mode); a new head trained on augmented images",
    "partial": "the last N stages of the backbone unfrozen (--unfreeze N) and trained with the head",
    "full": "fastai's recipe: frozen epochs, then everything unfrozen with discriminative LRs, one-cycle",
    "auto": "cached-feature recipes (backbones, a+b, size, flip/ten-crop TTA, views, head L2, an ensemble) by "
            "repeated CV within --budget minutes, never below the default probe, refitted on all photos",
}
# --mode auto chooses these itself (its search's recipe) or never reads them (it solves linear heads in one
# step: no optimizer, epochs or dropout; lr and weight decay reach only its default-probe candidate, which is
# `--mode probe` with their defaults): the workbench's form hides them in auto mode, and shows auto's own
# settings first (budget, folds, holdout, head L2, views). engine.train.auto_plan says in words what the search
# tries.
AUTO_CHOOSES = ("tta", "label_smoothing")
AUTO_IGNORES = ("epochs", "lr", "optimizer", "weight_decay", "dropout", "grad_clip", "patience")
AUTO_FIRST = ("budget", "folds", "holdout", "head_l2", "aug_views")
MIXES = ("none", "mixup", "cutmix", "both")
FINETUNE_MODES = ("head", "partial", "full")


OPTIMIZERS = ("adamw", "sgd")
AUGMENTS = ("none", "light", "strong")
CHANNELS_LAST = ("auto", "on", "off")


@dataclass
class TrainConfig:
    dataset: str = setting("", "dataset folder")
    backbone: str = setting(DEFAULT_BACKBONE, "pretrained backbone (`tlbench backbones` lists them)",
                            cli_help=f"pretrained backbone (default {DEFAULT_BACKBONE}; `tlbench backbones` "
                            "lists them)")
    mode: str = setting("probe", "probe | head | partial | full | auto", choices=MODES,
                        cli_help="probe | head | partial | full (see docs/fine-tuning.md) | auto (a recipe "
                        "chosen by cross-validation on the training split, within --budget minutes)")
    epochs: int | None = setting(None, "epochs (default: 30 for probe, 5-6 for the others)",
                                 parse=positive_int,
                                 cli_help="default: 30 for probe, 5 for head and partial, 6 for full")
    batch_size: int = setting(64, "images per step", parse=positive_int,
                              cli_help="images per step (per process under torchrun)")
    lr: float = setting(1e-3, "learning rate (the head's; the backbone gets less in full mode)",
                        parse=positive_float,
                        cli_help="peak learning rate of the head (the backbone's stages get less in partial "
                        "and full)")
    img_size: int | None = setting(None, "input size in px (default: the backbone's, less for small images)",
                                   parse=positive_int)
    val_fraction: float = setting(0.2, "validation share when tlbench splits the data", parse=fraction)
    seed: int | None = setting(0, "random seed (recorded in the run)", parse=non_negative_int)
    workers: int | None = setting(None,
                                  "DataLoader workers (default: by device; 0 on a CPU with the decoded "
                                  "cache)", parse=non_negative_int)
    device: str = setting("auto", "auto | cpu | cuda | mps", choices=DEVICES)
    runs_dir: str | None = setting(None, "where runs are written (default $TLBENCH_RUNS or ./runs)")
    weights: str | None = setting(None,
                                  "backbone weights: registry (default), 'random', or a state-dict file",
                                  cli_help="a local state dict for the backbone (loaded with "
                                  "weights_only=True), or 'random'")
    weight_decay: float = setting(0.0, "weight decay", parse=non_negative_float)
    # fine-tuning (head, partial, full)
    optimizer: str = setting("adamw", "adamw | sgd (momentum 0.9)", choices=OPTIMIZERS)
    label_smoothing: float = setting(0.0, "label smoothing, 0 to <1", parse=non_negative_float)
    augment: str = setting("light", "none | light (random resized crop + flip) | strong", choices=AUGMENTS,
                           cli_help="none | light (random resized crop + flip) | strong (+ TrivialAugment, "
                           "random erasing)")
    unfreeze: int = setting(2, "partial mode: how many of the backbone's last stages to train",
                            parse=positive_int)
    freeze_epochs: int = setting(1, "full mode: epochs with the backbone frozen before unfreezing",
                                 parse=non_negative_int)
    train_bn: bool = setting(False, "update BatchNorm running statistics in trained stages (large datasets)",
                             cli_help="update BatchNorm running statistics in trained stages (for large "
                             "datasets; by default they stay ImageNet's while the BatchNorm scale and shift "
                             "train)")
    precision: str = setting("auto",
                             "auto | fp32 | bf16 | fp16: autocast dtype of the forward passes (auto: bf16 on "
                             "a CUDA GPU that has it, else fp16 on CUDA, fp32 on CPU and MPS)",
                             choices=PRECISIONS,
                             cli_help="autocast dtype of the forward passes (default auto: measured once per "
                             "device and backbone, a reduced precision only where faster); fp16 adds a loss "
                             "scaler")
    amp: bool = setting(True, "False (--no-amp) is fp32, as before --precision existed",
                        cli_help="--no-amp is --precision fp32 (kept for older commands)")
    channels_last: str = setting("auto",
                                 "auto | on | off: channels_last memory format (auto: on CUDA and CPU, off "
                                 "on MPS)", switch=("on", "off"),
                                 cli_help="channels_last memory format (default: on CUDA and CPU, where it "
                                 "is faster; off on MPS)")
    # speed (issue 16)
    decoded_cache: bool = setting(True,
                                  "decode and resize each training image once into a memory-mapped cache "
                                  "(<cache>/decoded); later epochs and runs only crop, flip and augment",
                                  cli_help="--no-decoded-cache decodes every image every epoch (no disk "
                                  "used)", modes=("head", "partial", "full"))
    compile: bool = setting(False,
                            "torch.compile the model for fine-tuning (off by default: compiling "
                            "EfficientNet-Lite0 took 8.6 minutes on this project's 2-core CPU before steps "
                            "ran faster, so short runs lose; bench/compile.py measures it on your device)",
                            cli_help="torch.compile the model (fine-tuning; compiling takes minutes before "
                            "steps get faster: worth it for long runs; measure with bench/compile.py)",
                            modes=("head", "partial", "full"))
    grad_clip: float | None = setting(None, "clip the gradient norm to this value", parse=positive_float)
    patience: int | None = setting(None, "early stopping: epochs without a better validation accuracy",
                                   parse=positive_int)
    # tricks (issue 17) and the auto search: every mode records them, so resume/eval/predict/export reproduce them
    dropout: float = setting(0.0, "dropout before the head, 0 to <1 (training only)",
                             parse=non_negative_float,
                             cli_help="dropout on the pooled features before the head, in training only "
                             "(probe, head, partial, full); helps a head that overfits few images")
    tta: bool = setting(False,
                        "test-time augmentation: average the logits of each image and its mirror image",
                        cli_help="test-time augmentation: average each image's logits with its mirror "
                        "image's, in the run's report and in eval, predict and export (recorded in the run)")
    mix: str = setting("none", "none | mixup | cutmix | both: mix training images (fine-tuning)",
                       choices=MIXES, modes=FINETUNE_MODES,
                       cli_help="mix pairs of training images and their labels (head, partial, full): mixup "
                       "blends, cutmix pastes a patch; both alternates per batch")
    ema: bool = setting(False, "keep an exponential moving average of the weights (fine-tuning)",
                        modes=FINETUNE_MODES,
                        cli_help="validate and save an exponential moving average of the weights (head, "
                        "partial, full; decay --ema-decay)")
    ema_decay: float = setting(0.999, "decay of --ema per step", parse=fraction, modes=FINETUNE_MODES)
    budget: float = setting(15.0, "auto: minutes the recipe search may take", parse=positive_float,
                            modes=("auto",),
                            cli_help="--mode auto: minutes the recipe search may take (it starts no "
                            "candidate the estimate says would end past it)")
    folds: int = setting(5, "auto: cross-validation folds on the training split", parse=positive_int,
                         modes=("auto",))
    head_l2: float | None = setting(None, "auto: the head's L2 (chosen by cross-validation when empty)",
                                    parse=positive_float, modes=("auto",))
    aug_views: int = setting(0, "auto: random crop/flip views per training image for the head (0: none)",
                             parse=non_negative_int, modes=("auto",))
    # issue 23: auto refits its choice on every training photo; --holdout keeps a share out of search and fit
    holdout: float = setting(0.0, "auto: share of the photos held out of the search and the final model (0: none)",
                             parse=non_negative_float, modes=("auto",),
                             cli_help="--mode auto: share of the photos to hold out, which neither the search nor "
                             "the final model sees, to report an accuracy on (default 0: none; the report gives "
                             "the search's cross-validated estimate, and the model is fitted on every photo)")
    tensorboard: bool = setting(False, "log scalars for TensorBoard (needs the tensorboard package)",
                                cli_help="write TensorBoard scalars to RUN/tensorboard (needs the "
                                "tensorboard package)")
    # dataset audit (issue 14): files left out of training, duplicate groups kept on one side of the split
    exclude: str = setting("auto",
                           "images to leave out: auto (the dataset's exclude list, if marked), none, or a "
                           "file",
                           cli_help="a file listing images to leave out of train and validation, one path "
                           "per line (relative to the dataset or absolute); default auto: the list marked in "
                           "the workbench's Audit view, if any; none: no exclusion. Files are never moved or "
                           "deleted.")
    group_duplicates: str = setting("auto",
                                    "auto | on | off: keep each duplicate group of the last audit on one "
                                    "side of the split (auto: when it found leakage)",
                                    choices=GROUP_DUPLICATES,
                                    cli_help="keep each duplicate group found by the last `tlbench audit` on "
                                    "one side of the train/validation split (default auto: on when that "
                                    "audit found groups across the split)")

    def validate(self) -> "TrainConfig":
        if self.mode not in MODES:
            raise choice_error("mode", self.mode, MODES)
        if self.device not in DEVICES:
            raise choice_error("device", self.device, DEVICES)
        if self.precision not in PRECISIONS:
            raise choice_error("precision", self.precision, PRECISIONS)
        # configs written before "auto" existed hold a bool: True was the default and meant "on CUDA"
        self.channels_last = {True: "auto", False: "off", None: "auto"}.get(self.channels_last, self.channels_last)
        if self.channels_last not in CHANNELS_LAST:
            raise choice_error("channels_last", self.channels_last, CHANNELS_LAST)
        if not self.amp and self.precision not in ("auto", "fp32"):
            raise ConfigError(f"--no-amp means fp32, but --precision {self.precision} was also given: "
                              f"drop --no-amp to train in {self.precision}, or use --precision fp32.")
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS[self.mode]
        check_whole("--epochs", self.epochs, 1, 10_000)
        check_whole("--batch-size", self.batch_size, 1, 65_536)
        check_number("--lr", self.lr, 0, 10, above=True, fix="use a positive learning rate such as 1e-3")
        if self.img_size is not None:
            check_whole("--img-size", self.img_size, 32, 1024, fix="use 32 to 1024 pixels (e.g. 224)")
        check_number("--val-fraction", self.val_fraction, 0, 1, above=True, below=True,
                     fix="use a value between 0 and 1, e.g. 0.2")
        if self.workers is not None:
            check_whole("--workers", self.workers, 0, 64, fix="use 0 (load in the main process) to 64")
        if self.seed is not None:
            check_whole("--seed", self.seed, 0, 2**63 - 1, fix="use a non-negative integer")
        check_number("--weight-decay", self.weight_decay, 0)
        if not self.dataset:
            raise ConfigError("No dataset given: pass a dataset folder (see `tlbench scan`).")
        if self.optimizer not in OPTIMIZERS:
            raise choice_error("optimizer", self.optimizer, OPTIMIZERS)
        if self.augment not in AUGMENTS:
            raise choice_error("augmentation preset", self.augment, AUGMENTS)
        check_number("--label-smoothing", self.label_smoothing, 0, 1, below=True, fix="use 0 to below 1, e.g. 0.1")
        check_whole("--unfreeze", self.unfreeze, 1, 1000)
        check_whole("--freeze-epochs", self.freeze_epochs, 0)
        if self.grad_clip is not None:
            check_number("--grad-clip", self.grad_clip, 0, above=True)
        if self.patience is not None:
            check_whole("--patience", self.patience, 1, 10_000)
        if self.group_duplicates not in GROUP_DUPLICATES:
            raise choice_error("group_duplicates", self.group_duplicates, GROUP_DUPLICATES)
        if not str(self.exclude or "").strip():
            self.exclude = "auto"
        check_number("--dropout", self.dropout, 0, 1, below=True, fix="use 0 to below 1, e.g. 0.2")
        if self.mix not in MIXES:
            raise choice_error("--mix", self.mix, MIXES)
        check_number("--ema-decay", self.ema_decay, 0, 1, above=True, below=True, fix="use e.g. 0.999")
        check_number("--budget", self.budget, 0, 10_000, above=True, fix="give minutes, e.g. 15")
        check_whole("--folds", self.folds, 2, 50)
        if self.head_l2 is not None:
            check_number("--head-l2", self.head_l2, 0, above=True, fix="use e.g. 1e-3, or leave it to the search")
        check_whole("--aug-views", self.aug_views, 0, 64)
        check_number("--holdout", self.holdout, 0, 1, below=True, fix="use 0 (none) to below 1, e.g. 0.2")
        if self.mode == "full" and self.freeze_epochs >= self.epochs:
            raise ConfigError(
                f"--freeze-epochs {self.freeze_epochs} leaves no epoch to fine-tune with --epochs {self.epochs}: "
                f"use fewer frozen epochs (e.g. 1) or more epochs, or --mode head to keep the backbone frozen.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

