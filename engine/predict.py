"""Loading a run's model and predicting classes for image files."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.backbones import build_classifier
from engine.errors import RunError
from engine.images import ImageProblem
from engine.models import Classifier
from engine.preprocess import load_for_model
from engine.runs import load_checkpoint, load_config


def load_run_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu",
                   checkpoint: str = "best.pt") -> tuple[Classifier, dict]:
    """The run's classifier in eval mode, and its config record.

    A probe run's checkpoint holds only the head: the backbone is rebuilt from the registry with the
    weights recorded in the config (and must still be the same weights).
    """
    run_dir = Path(run_dir)
    record = load_config(run_dir)
    ckpt = load_checkpoint(run_dir / checkpoint)
    scope = ckpt.get("model_scope", "full")
    weights = record.get("weights")
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


def predict_paths(model: Classifier, record: dict, paths: list[str], top_k: int = 5,
                  device: str | torch.device = "cpu") -> list[dict]:
    """Per image {"path", "predictions": [{"class", "prob"}...]} or {"path", "error"}; one bad image never
    stops the others."""
    classes = record["classes"]
    k = max(1, min(top_k, len(classes)))
    prep = record["preprocessing"]
    out = []
    for path in paths:
        try:
            x = load_for_model(path, prep)
        except ImageProblem as err:
            out.append({"path": str(path), "error": str(err)})
            continue
        with torch.inference_mode():
            probs = model(x.unsqueeze(0).to(device).float().div(255)).softmax(1)[0].cpu()
        top = probs.topk(k)
        out.append({"path": str(path), "predictions": [
            {"class": classes[i], "index": int(i), "prob": round(float(p), 6)}
            for p, i in zip(top.values.tolist(), top.indices.tolist())
        ]})
    return out
