"""Loading a run's model and predicting classes for image files."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.backbones import build_classifier
from engine.errors import RunError
from engine.images import ImageProblem, is_image_name
from engine.models import Classifier
from engine.preprocess import load_for_model
from engine.runs import load_checkpoint, load_config
from engine.weights import is_random


def load_run_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu",
                   checkpoint: str = "best.pt") -> tuple[Classifier, dict]:
    """The run's classifier in eval mode, and its config record.

    A probe run's checkpoint holds only the head: the backbone is rebuilt from the registry with the
    weights recorded in the config (and must still be the same weights). A checkpoint with the whole model
    (fine-tuning, or a probe on random weights) is loaded into the architecture, whose own initialisation
    is then overwritten.
    """
    run_dir = Path(run_dir)
    record = load_config(run_dir)
    ckpt = load_checkpoint(run_dir / checkpoint)
    scope = ckpt.get("model_scope", "full")
    weights = record.get("weights")
    if scope == "head" and is_random(weights):
        raise RunError(
            f"{run_dir} is a probe on a random backbone whose weights were not saved (runs before tlbench "
            "kept them): its predictions cannot be reproduced. Train it again; new runs save the backbone."
        )
    model, identity = build_classifier(record["backbone"], len(record["classes"]),
                                       weights if scope == "head" else "random")
    if scope == "head":
        if identity != record.get("weights_identity"):
            raise RunError(
                f"{run_dir} was trained on backbone weights {record.get('weights_identity')}, but these are "
                f"{identity}. Reinstall the same weights, or pass the same --weights file."
            )
        model.head.load_state_dict(ckpt["model"])
    else:
        model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), record


def expand_folders(paths: list[str]) -> list[str]:
    """Each folder becomes the image files under it (sorted; hidden files and symlinked folders skipped);
    a folder with none stays as it is, so it gets its own error line."""
    out = []
    for path in paths:
        if not os.path.isdir(path):
            out.append(str(path))
            continue
        found = []
        for folder, dirs, files in os.walk(path):  # followlinks=False: a link loop cannot recurse forever
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(folder, f) for f in sorted(files) if is_image_name(f)]
        out += found or [str(path)]
    return out


def predict_paths(model: Classifier, record: dict, paths: list[str], top_k: int = 5,
                  device: str | torch.device = "cpu", batch_size: int = 32) -> list[dict]:
    """Per image {"path", "predictions": [{"class", "prob"}...]} or {"path", "error"}, in input order; a
    folder stands for the images inside it; one bad image never stops the others."""
    classes = record["classes"]
    k = max(1, min(top_k, len(classes)))
    prep = record["preprocessing"]
    out: list[dict] = []
    batch: list[tuple[dict, torch.Tensor]] = []

    def flush() -> None:
        with torch.inference_mode():
            x = torch.stack([t for _, t in batch]).to(device).float().div(255)
            top = model(x).softmax(1).cpu().topk(k)
        for (row, _), values, indices in zip(batch, top.values.tolist(), top.indices.tolist()):
            row["predictions"] = [{"class": classes[i], "index": int(i), "prob": round(float(p), 6)}
                                  for p, i in zip(values, indices)]
        batch.clear()

    for path in expand_folders(paths):
        row: dict = {"path": path}
        out.append(row)
        if os.path.isdir(path):
            row["error"] = "a folder with no image files in it"
            continue
        try:
            batch.append((row, load_for_model(path, prep)))
        except ImageProblem as err:
            row["error"] = str(err)
            continue
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return out
