"""Typed views of the JSON a run writes: its preprocessing and its config.json.

Both are frozen dataclasses read with `from_dict` and written with `to_dict`, which gives back the very JSON
they were read from (same keys, same order, same values), so config.json, report.json, checkpoints, the
feature-cache key and exported metadata are byte-for-byte what they were when these were plain dicts. Keys
this version does not know are kept (`Preprocessing.extra`, `RunRecord.raw`): a run written by a newer
tlbench loads, and one written by an older tlbench (without the newer keys) loads with the defaults.

They live in core, the lowest layer: `engine.core.runs.load_config` returns a RunRecord, and the data layer's
transforms take a Preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from engine.core.errors import RunError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PREP_KEYS = ("crop_size", "resize_size", "interpolation", "mean", "std")


def _triple(value: Any, key: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in value)
    except (TypeError, ValueError):
        raise RunError(f"The preprocessing's {key} is {value!r}; it must be three numbers (one per RGB "
                       "channel). The run's config.json is damaged: train the run again.") from None
    return a, b, c


@dataclass(frozen=True)
class Preprocessing:
    """The eval transform of a model's input: resize the shorter side to `resize_size` with `interpolation`,
    center-crop `crop_size`, then normalise with `mean` and `std` (inside the model, engine.models.classifier)."""

    crop_size: int
    resize_size: int
    interpolation: str = "bilinear"  # torchvision's InterpolationMode value: "bilinear" or "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extra: dict[str, Any] = field(default_factory=dict, hash=False)  # keys a newer tlbench wrote

    @property
    def resize_mode(self) -> str:
        """The F.interpolate mode for `interpolation` (torchvision weights use these two)."""
        return "bicubic" if self.interpolation == "bicubic" else "bilinear"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in the order tlbench has always written them."""
        return {"crop_size": self.crop_size, "resize_size": self.resize_size, "interpolation": self.interpolation,
                "mean": list(self.mean), "std": list(self.std), **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        if isinstance(data, Preprocessing):
            return data
        if not isinstance(data, Mapping):
            raise RunError(f"The preprocessing record is {data!r}, not an object with crop_size and "
                           "resize_size. The run's config.json is damaged: train the run again.")
        missing = [k for k in ("crop_size", "resize_size") if k not in data]
        if missing:
            raise RunError(f"The preprocessing record {dict(data)} has no {' or '.join(missing)}. The run's "
                           "config.json is damaged: train the run again.")
        return cls(
            crop_size=int(data["crop_size"]),
            resize_size=int(data["resize_size"]),
            interpolation=str(data.get("interpolation", "bilinear")),
            mean=_triple(data.get("mean", IMAGENET_MEAN), "mean"),
            std=_triple(data.get("std", IMAGENET_STD), "std"),
            extra={k: v for k, v in data.items() if k not in _PREP_KEYS},
        )


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _opt(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


@dataclass(frozen=True)
class RunRecord:
    """A run's config.json, the fields the engine and the workbench read typed; `raw` keeps the whole file
    (every other key: the training settings, versions, counts, and keys this version does not know)."""

    classes: tuple[str, ...]
    backbone: str
    dataset: str  # the dataset root the run trained on
    preprocessing: Preprocessing
    mode: str | None = None  # probe | head | partial | full
    seed: int = 0
    val_fraction: float = 0.2
    weights: str | None = None  # None: the registry's; "random"; or a state-dict file
    weights_identity: str | None = None
    img_size: int | None = None
    feature_dim: int | None = None
    precision: str | None = None  # None: recorded before --precision existed
    dataset_fingerprint: str | None = None
    created: str | None = None
    resumed: tuple[str, ...] = ()  # when the run was resumed, oldest first
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config.json") -> RunRecord:
        if not isinstance(data, Mapping):
            raise RunError(f"{source} holds {type(data).__name__}, not a run record. Train the run again.")
        missing = [k for k in ("classes", "backbone", "dataset", "preprocessing") if k not in data]
        if missing:
            raise RunError(f"{source} has no {', '.join(missing)}: it is damaged or not a tlbench run. "
                           "Train the run again.")
        try:
            return cls(
                classes=_tuple_of_str(data["classes"]),
                backbone=str(data["backbone"]),
                dataset=str(data["dataset"]),
                preprocessing=Preprocessing.from_dict(data["preprocessing"]),
                mode=_opt(str, data.get("mode")),
                seed=_opt(int, data.get("seed")) or 0,  # null: a run before seeds were recorded
                val_fraction=float(data.get("val_fraction", 0.2)),
                weights=_opt(str, data.get("weights")),
                weights_identity=_opt(str, data.get("weights_identity")),
                img_size=_opt(int, data.get("img_size")),
                feature_dim=_opt(int, data.get("feature_dim")),
                precision=_opt(str, data.get("precision")),
                dataset_fingerprint=_opt(str, data.get("dataset_fingerprint")),
                created=_opt(str, data.get("created")),
                resumed=_tuple_of_str(data.get("resumed") or ()),
                raw=dict(data),
            )
        except (TypeError, ValueError) as err:
            raise RunError(f"{source} has a value of the wrong type ({err}). Train the run again.") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: `raw` in its order, with the typed fields over it. A typed field the file did not
        have is added only when it differs from its default, so an old record is written back unchanged."""
        out = dict(self.raw)
        for f in fields(self):
            if f.name == "raw":
                continue
            value = getattr(self, f.name)
            if f.name in out:
                if not _same(out[f.name], value):
                    out[f.name] = _jsonable(value)
            elif value != f.default:
                out[f.name] = _jsonable(value)
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """A key of the file that has no typed field (a training setting, a count, a newer key)."""
        return self.raw.get(key, default)


def _same(stored: Any, value: Any) -> bool:
    """Whether the file's value already says `value` (then it is written back as it was: 1 stays 1, not 1.0)."""
    try:
        if isinstance(value, Preprocessing):
            return Preprocessing.from_dict(stored) == value
        if isinstance(value, tuple):
            return tuple(stored) == value
    except (RunError, TypeError):
        return False
    return stored == value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Preprocessing):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value
