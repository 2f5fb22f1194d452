"""Loading a run's model and predicting classes for image files."""

from __future__ import annotations

import os

import torch

from engine.core.records import RunRecord
from engine.data.images import ImageProblem, is_image_name
from engine.data.loaders import load_for_model
from engine.evaluate.evaluation import run_tta, with_tta
from engine.models.loading import RunModel, inference_model
from engine.models.predictions import top_predictions_rows


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


def predict_paths(model: RunModel, record: RunRecord, paths: list[str], top_k: int = 5,
                  device: str | torch.device = "cpu", batch_size: int = 32, tta: bool | None = None) -> list[dict]:
    """Per image {"path", "predictions": [{"class", "prob"}...]} or {"path", "error"}, in input order; a
    folder stands for the images inside it; one bad image never stops the others. `tta`: flip averaging
    (None: as the run recorded)."""
    # the model as its run computed (engine.models.loading.inference_model), as eval runs it
    fast = inference_model(model, record, torch.device(device))
    judged = with_tta(fast, run_tta(record, tta))
    channels_last = torch.device(device).type in ("cpu", "cuda")
    classes = record.classes
    prep = record.preprocessing
    out: list[dict] = []
    batch: list[tuple[dict, torch.Tensor]] = []

    def flush() -> None:
        with torch.inference_mode():
            x = torch.stack([t for _, t in batch]).to(device).float().div(255)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            rows = top_predictions_rows(judged(x).softmax(1).cpu(), classes, top_k)
        for (row, _), predictions in zip(batch, rows):
            row["predictions"] = predictions
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
