"""What attacks and dreams aim at: a model (a trained run, or a backbone's ImageNet head) and a class in it."""

from __future__ import annotations

import copy
import difflib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.core.errors import ConfigError
from engine.core.records import Preprocessing, RunRecord
from engine.core.runs import resolve_run_dir, runs_root
from engine.models.build import build_classifier
from engine.models.classifier import Classifier
from engine.models.loading import load_run_model
from engine.models.registry import get_spec, imagenet_classes, weights_status


@dataclass
class TargetModel:
    model: Classifier  # eval mode, parameters frozen
    classes: list[str]
    prep: Preprocessing
    name: str  # for messages: "efficientnet_lite0 (ImageNet)" or the run's directory name
    run_dir: Path | None = None
    record: RunRecord | None = None  # the run's config.json


def freeze(model: Classifier) -> Classifier:
    """Eval mode (BatchNorm statistics fixed, no dropout) and no parameter gradients: attacks and dreams
    differentiate with respect to the image only, so weight gradients would be wasted work."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# The last loaded models, most recent last. Attacks and dreams are run again and again against the same model
# (a 10-step PGD took 0.5 s, loading the model 7.9 s); two entries hold a model and its --eval-on partner.
# A cached model is frozen (eval mode, no parameter gradients) and shared: jobs read it or take copies
# (engine.models.fast.inference_copy), never change it.
TARGET_CACHE_SIZE = 2
_cache: OrderedDict[tuple, tuple[Classifier, RunRecord | None]] = OrderedDict()
_cache_lock = threading.Lock()


def clear_target_cache() -> None:
    """Forget the cached models (frees their memory, on a GPU too)."""
    with _cache_lock:
        _cache.clear()


def _stamp(path: Path) -> tuple[int, int] | None:
    """(mtime in ns, size): a file rewritten in place changes one of them."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _run_key(path: Path, device: torch.device) -> tuple | None:
    checkpoint, config = _stamp(path / "best.pt"), _stamp(path / "config.json")
    if checkpoint is None or config is None:
        return None  # nothing to reuse: loading will say what is missing
    return ("run", str(path.resolve()), checkpoint, config, str(device))


def _backbone_key(backbone: str, device: torch.device) -> tuple:

    weights = weights_status(get_spec(backbone)).path  # shipped file, or the hub cache's file (maybe absent)
    return ("backbone", backbone, weights, _stamp(Path(weights)) if weights else None, str(device))


def _cached(key: tuple | None, load) -> tuple[Classifier, RunRecord | None]:
    """The model and record for `key`, loading (and freezing) it with `load()` when it is not cached."""
    if key is not None:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    model, record = load()
    entry = (freeze(model), record)
    if key is not None:
        with _cache_lock:
            _cache[key] = entry
            while len(_cache) > TARGET_CACHE_SIZE:
                _cache.popitem(last=False)
    return entry


def load_target_model(run_dir: str | os.PathLike | None = None, backbone: str | None = None,
                      device: str | torch.device = "cpu", img_size: int | None = None) -> TargetModel:
    """A run's classifier (its own classes), or a backbone with its 1,000-class ImageNet head.

    The model is reused from the last loads when its files are unchanged (run: best.pt and config.json,
    same mtime and size; backbone: the same weights file) on the same device: it is frozen and shared, so
    treat it as read-only (attacks and dreams work on copies).
    """
    if run_dir is not None and backbone is not None:
        raise ConfigError("Give a run directory or --backbone, not both.")
    device = torch.device(device)
    if run_dir is not None:

        path = resolve_run_dir(run_dir, runs_root())

        def load_run():

            return load_run_model(path, device)

        model, record = _cached(_run_key(path, device), load_run)
        assert record is not None  # load_run returns the run's record
        record = copy.deepcopy(record)  # its `raw` dict stays the caller's own
        prep = record.preprocessing
        if img_size:

            prep = get_spec(record.backbone).preprocessing(img_size)
        return TargetModel(model, list(record.classes), prep, path.name, path, record)
    if backbone is None:
        raise ConfigError("Give the model to attack: a run directory or --backbone.")

    spec = get_spec(backbone)  # raises with the allowed names

    def load_backbone():

        return build_classifier(backbone, None)[0].to(device), None

    model, _ = _cached(_backbone_key(backbone, device), load_backbone)
    return TargetModel(model, imagenet_classes(), spec.preprocessing(img_size), f"{backbone} (ImageNet)")


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


def resolve_class(value: str | int, classes: list[str], model_name: str = "the model") -> int:
    """A class by index or by name (case-insensitive; '_' and spaces alike).

    A name that starts with a class's full name resolves to it ("tabby cat" -> "tabby", "golden retriever
    dog" -> "golden retriever"): ImageNet's short names drop the synonyms people type. An unknown name
    raises a ConfigError with the closest names.
    """
    n = len(classes)
    text = str(value).strip()
    if isinstance(value, int) or text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < n:
            raise ConfigError(f"Class index {index} is out of range: {model_name} has {n} classes (0-{n - 1}).")
        return index
    query = _norm(text)
    names = [_norm(c) for c in classes]
    exact = [i for i, c in enumerate(names) if c == query]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        listed = ", ".join(f"{i} ({classes[i]!r})" for i in exact)
        raise ConfigError(f"Class {text!r} is ambiguous in {model_name}: it names classes {listed}. "
                          "Pass the index instead.")
    starts = [i for i, c in enumerate(names) if c and query.startswith(c + " ")]
    if starts:
        longest = max(len(names[i]) for i in starts)
        best = [i for i in starts if len(names[i]) == longest]
        if len(best) == 1:
            return best[0]
    raise ConfigError(f"Unknown class {text!r} in {model_name}.{class_suggestions(query, classes)} "
                      f"Pass a class name (case-insensitive) or an index from 0 to {n - 1}.")


def class_suggestions(query: str, classes: list[str], n: int = 4) -> str:
    """' Did you mean …?': names containing the query's words first, then spelling neighbours."""
    names = [_norm(c) for c in classes]
    words = query.split()
    picks = [i for i, c in enumerate(names) if words and all(w in c.split() for w in words)][:n]
    for close in difflib.get_close_matches(query, names, n=n, cutoff=0.6):
        i = names.index(close)
        if i not in picks:
            picks.append(i)
    if not picks:
        return ""
    return " Did you mean " + " or ".join(f"{classes[i]!r} ({i})" for i in picks[:n]) + "?"
