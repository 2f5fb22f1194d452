"""Loading a run's model and predicting classes for image files."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.core.checkpoints import load_checkpoint
from engine.core.choices import RUN_PRECISIONS  # what `precision=` of load_run_model accepts
from engine.core.errors import RunError
from engine.core.records import RunRecord
from engine.core.runs import load_config
from engine.models.build import build_classifier
from engine.models.classifier import Classifier
from engine.models.ensemble import Ensemble, build_auto_model, load_heads
from engine.models.fast import inference_copy
from engine.models.weights import is_random
from engine.runtime.precision import recorded_dtype


def run_precision(record: RunRecord) -> str:
    """The precision a run computed in: recorded before its first step (precision_resolved); fp32 for runs from
    before it was recorded, whose default was fp32 on the CPUs they ran on."""
    return str(record.get("precision_resolved") or "fp32")


def run_scope(record: RunRecord) -> str:
    """Where a run's autocast applied: the backbone alone for the probe and auto (their heads were fitted in
    fp32 on cached features), the whole forward for fine-tuning."""
    return "features" if record.mode in ("probe", "auto") else "model"


# What a run's model is: a Classifier, or for an auto run that recorded its structure one Ensemble module
RunModel = Classifier | Ensemble


def auto_structure(record: RunRecord) -> dict | None:
    """An auto run's recorded model structure (engine.models.ensemble), or None (any other run, or an auto run
    from before auto saved ensembles: its checkpoint is a probe's head)."""
    auto = record.get("auto")
    return auto.get("model") if record.mode == "auto" and isinstance(auto, dict) else None


def load_run_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu",
                   checkpoint: str = "best.pt", precision: str = "recorded") -> tuple[RunModel, RunRecord]:
    """The run's classifier in eval mode, and its config record.

    `precision`: "recorded" (the default) makes the model compute as its run did (Classifier.run_dtype), so
    eval, predict, explain and attacks on a run give its numbers on any machine; "fp32" (export, or a user's
    choice) or another precision overrides it.

    A probe run's checkpoint holds only the head: the backbone is rebuilt from the registry with the
    weights recorded in the config (and must still be the same weights). A checkpoint with the whole model
    (fine-tuning, or a probe on random weights) is loaded into the architecture, whose own initialisation
    is then overwritten. An auto run's Ensemble is rebuilt from the structure config.json recorded, each
    backbone from the registry, the heads and member weights from the checkpoint.
    """
    run_dir = Path(run_dir)
    record = load_config(run_dir)
    ckpt = load_checkpoint(run_dir / checkpoint)
    scope = ckpt.get("model_scope", "full")
    weights = record.weights
    if precision not in RUN_PRECISIONS:
        raise RunError(f"precision {precision!r}: use one of {', '.join(RUN_PRECISIONS)}.")
    structure = auto_structure(record)
    if structure is not None:
        ensemble = load_ensemble(run_dir, record, structure, ckpt, scope)
        ensemble.run_dtype = recorded_dtype(run_precision(record) if precision == "recorded" else precision)
        ensemble.run_scope = run_scope(record)
        return ensemble.to(device).eval(), record
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
    model.run_dtype = recorded_dtype(run_precision(record) if precision == "recorded" else precision)
    model.run_scope = run_scope(record)
    return model.to(device).eval(), record

def load_ensemble(run_dir: Path, record: RunRecord, structure: dict, ckpt: dict, scope: str) -> Ensemble:
    """An auto run's module: "heads" checkpoints on the registry's (or --weights) backbones, which must still
    be the recorded ones; "full" ones (a random backbone) loaded whole."""
    weights = record.weights if scope == "heads" else "random"
    model, identities = build_auto_model(structure, len(record.classes), weights, seed=record.seed)
    if scope == "heads":
        recorded = [b["weights_identity"] for b in structure["backbones"]]
        if identities != recorded:
            raise RunError(f"{run_dir} was trained on backbone weights {', '.join(sorted(set(recorded)))}, but "
                           f"these are {', '.join(sorted(set(identities)))}. Reinstall the same weights, or pass "
                           "the same --weights file.")
        load_heads(model, ckpt["model"])
    else:
        model.load_state_dict(ckpt["model"])
    return model


def inference_model(model: RunModel, record: RunRecord, device: torch.device) -> RunModel:
    """The run's model as its run computed its validation, for eval and predict: a probe's or auto's features
    through the BatchNorm-folded inference copy extraction used; a fine-tuned model as it validated each epoch
    (eval mode, channels_last when the run trained so). Same path, same precision: the same probabilities."""
    if run_scope(record) == "features":  # (an Ensemble: each backbone so, engine.models.fast)
        return inference_copy(model, device, record.preprocessing.crop_size)
    model = model.to(device).eval()
    if record.get("channels_last_resolved"):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # nn.Module.to takes memory_format; its stubs do not say so
    return model
