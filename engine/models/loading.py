"""Loading a run's model and predicting classes for image files."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.core.errors import RunError
from engine.core.records import RunRecord
from engine.core.runs import load_checkpoint, load_config
from engine.models.build import build_classifier
from engine.models.classifier import Classifier
from engine.models.weights import is_random


def load_run_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu",
                   checkpoint: str = "best.pt") -> tuple[Classifier, RunRecord]:
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
    weights = record.weights
    if scope == "head" and is_random(weights):
        raise RunError(
            f"{run_dir} is a probe on a random backbone whose weights were not saved (runs before tlbench "
            "kept them): its predictions cannot be reproduced. Train it again; new runs save the backbone."
        )
    model, identity = build_classifier(record.backbone, len(record.classes),
                                       weights if scope == "head" else "random")
    if scope == "head":
        if identity != record.weights_identity:
            raise RunError(
                f"{run_dir} was trained on backbone weights {record.weights_identity}, but these are "
                f"{identity}. Reinstall the same weights, or pass the same --weights file."
            )
        model.head.load_state_dict(ckpt["model"])
    else:
        model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), record

