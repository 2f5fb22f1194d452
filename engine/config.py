"""Training configuration: every hyperparameter, validated with errors that name the value and the fix."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from engine.backbones import DEFAULT_BACKBONE, get_spec
from engine.devices import DEVICES
from engine.errors import ConfigError, choice_error

MODES = ("probe", "head", "partial", "full")
# Probe epochs cost milliseconds (the features are cached); the other modes run the backbone every epoch.
DEFAULT_EPOCHS = {"probe": 30, "head": 5, "partial": 5, "full": 6}

MODE_HELP = {
    "probe": "frozen backbone; features extracted once and cached; a linear head trained on them (fastest)",
    "head": "frozen backbone (BatchNorm kept in eval mode); a new head trained on augmented images",
    "partial": "the last N stages of the backbone unfrozen (--unfreeze N) and trained with the head",
    "full": "fastai's recipe: frozen epochs, then everything unfrozen with discriminative LRs, one-cycle",
}


@dataclass
class TrainConfig:
    dataset: str
    backbone: str = DEFAULT_BACKBONE
    mode: str = "probe"
    epochs: int | None = None  # None: DEFAULT_EPOCHS[mode]
    batch_size: int = 64
    lr: float = 1e-3
    img_size: int | None = None  # None: the backbone's size, smaller for small images (see resolve_img_size)
    val_fraction: float = 0.2
    seed: int | None = 0
    workers: int | None = None  # None: chosen for the device
    device: str = "auto"
    runs_dir: str | None = None
    weights: str | None = None  # None: registry weights; "random"; or a state-dict file
    weight_decay: float = 0.0

    def validate(self) -> "TrainConfig":
        get_spec(self.backbone)  # raises with the allowed names
        if self.mode not in MODES:
            raise choice_error("mode", self.mode, MODES)
        if self.device not in DEVICES:
            raise choice_error("device", self.device, DEVICES)
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS[self.mode]
        _positive_int("--epochs", self.epochs, 10_000)
        _positive_int("--batch-size", self.batch_size, 65_536)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10):
            raise ConfigError(f"--lr {self.lr} is out of range: use a positive learning rate such as 1e-3.")
        if self.img_size is not None:
            if not isinstance(self.img_size, int) or not 32 <= self.img_size <= 1024:
                raise ConfigError(f"--img-size {self.img_size} is out of range: use 32 to 1024 pixels (e.g. 224).")
        if not (isinstance(self.val_fraction, (int, float)) and 0 < self.val_fraction < 1):
            raise ConfigError(f"--val-fraction {self.val_fraction} is out of range: use a value between 0 and 1, e.g. 0.2.")
        if self.workers is not None and not (isinstance(self.workers, int) and 0 <= self.workers <= 64):
            raise ConfigError(f"--workers {self.workers} is out of range: use 0 (load in the main process) to 64.")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ConfigError(f"--seed {self.seed} is out of range: use a non-negative integer.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"--weight-decay {self.weight_decay} must be >= 0.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _positive_int(flag: str, value, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise ConfigError(f"{flag} {value} is out of range: use a whole number from 1 to {limit}.")


def resolve_img_size(requested: int | None, backbone_size: int, median_side: int | None) -> int:
    """The input size: as asked; else the backbone's, reduced for datasets of small images.

    Upscaling an 8x8 digit to 224 px adds no information and costs 12x the compute of 64 px, so small
    images get the smallest multiple of 32 at or above their median side (at least 64 px).
    """
    if requested:
        return requested
    if median_side and median_side < backbone_size:
        return max(64, min(backbone_size, int(math.ceil(median_side / 32.0) * 32)))
    return backbone_size
