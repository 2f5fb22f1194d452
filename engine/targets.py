"""What attacks and dreams aim at: a model (a trained run, or a backbone's ImageNet head) and a class in it."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import ConfigError
from engine.models import Classifier


@dataclass
class TargetModel:
    model: Classifier  # eval mode, parameters frozen
    classes: list[str]
    prep: dict  # engine.preprocess format: crop_size, resize_size, interpolation, mean, std
    name: str  # for messages: "efficientnet_lite0 (ImageNet)" or the run's directory name
    run_dir: Path | None = None
    record: dict | None = None  # the run's config.json


def freeze(model: Classifier) -> Classifier:
    """Eval mode (BatchNorm statistics fixed, no dropout) and no parameter gradients: attacks and dreams
    differentiate with respect to the image only, so weight gradients would be wasted work."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_target_model(run_dir: str | os.PathLike | None = None, backbone: str | None = None,
                      device: str | torch.device = "cpu", img_size: int | None = None) -> TargetModel:
    """A run's classifier (its own classes), or a backbone with its 1,000-class ImageNet head."""
    if run_dir is not None and backbone is not None:
        raise ConfigError("Give a run directory or --backbone, not both.")
    if run_dir is not None:
        from engine.predict import load_run_model
        from engine.runs import resolve_run_dir, runs_root

        path = resolve_run_dir(run_dir, runs_root())
        model, record = load_run_model(path, device)
        prep = dict(record["preprocessing"])
        if img_size:
            from engine.backbones import get_spec

            prep = get_spec(record["backbone"]).preprocessing(img_size)
        return TargetModel(freeze(model), list(record["classes"]), prep, path.name, path, record)
    from engine.backbones import build_classifier, get_spec, imagenet_classes

    spec = get_spec(backbone)  # raises with the allowed names
    model, _ = build_classifier(backbone, None)
    return TargetModel(freeze(model.to(device)), imagenet_classes(), spec.preprocessing(img_size),
                       f"{backbone} (ImageNet)")


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
