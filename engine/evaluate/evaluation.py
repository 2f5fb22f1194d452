"""Evaluation reports, fastai's interpretation tools headless: accuracy, top-5, per-class precision, recall,
F1 and support, the confusion matrix, the most-confused pairs and the top losses (the images the model got
most confidently wrong). Saved into the run's report.json, with confusion.png and top_losses.png.

`evaluate_run(run_dir, dataset=None, ctx)` is the job the CLI (`tlbench eval`) and the workbench run;
training calls `build_report` + `save_report` on logits it already has, so it costs no extra pass.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from engine.core.errors import DatasetError
from engine.core.events import JobStarted, ProgressAdvanced
from engine.core.records import Preprocessing, RunRecord
from engine.core.runs import load_config, update_report
from engine.data.loaders import ImageFiles, auto_workers, data_loader
from engine.data.scan import scan_dataset, scan_run_dataset
from engine.data.splits import plan_for_run
from engine.evaluate.plots import confusion_png, top_losses_png
from engine.models.loading import auto_structure, inference_model, load_run_model
from engine.runtime.devices import resolve_device

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

TOP_LOSSES = 16
# Every wrong prediction is listed (highest loss first) so the workbench can show any confusion cell's
# images; the cap keeps report.json small (~150 bytes a row) on a badly trained model of a huge dataset.
MAX_MISTAKES = 5000
MOST_CONFUSED = 20
LEAST_CONFIDENT_PER_CLASS = 5  # right answers kept per class, the least sure first


class FlipAveraged(nn.Module):
    """Test-time augmentation: the mean of the model's logits on the images and on their mirror images.

    A module, so an export carries it (TorchScript and ONNX trace the flip); for a linear head it equals
    averaging the two views' features, which is what `train --mode auto` scored."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x) + self.model(x.flip(-1))) / 2


def with_tta(model: nn.Module, tta: bool) -> nn.Module:
    return FlipAveraged(model) if tta else model


def run_tta(record: RunRecord, tta: bool | None) -> bool:
    """--tta as asked, else as the run recorded (its training config's `tta`). An auto run's model carries its
    own test-time views inside (engine.models.ensemble): nothing is added unless asked."""
    if tta is None and auto_structure(record) is not None:
        return False
    return bool(record.raw.get("tta")) if tta is None else tta


def build_report(logits: torch.Tensor, labels: torch.Tensor, paths: list[str], classes: list[str],
                 split: str = "val", checkpoint: str = "best.pt", top_losses: int = TOP_LOSSES) -> dict:
    """The report for `logits` [N, C] against `labels` [N] (the report.json contract)."""
    logits, labels = logits.float().cpu(), labels.long().cpu()
    n, c = len(labels), len(classes)
    report: dict = {"split": split, "checkpoint": checkpoint, "n": n, "classes": list(classes)}
    if n == 0:
        return {**report, "accuracy": None, "top5": None, "per_class": [], "confusion": [[0] * c for _ in range(c)],
                "most_confused": [], "top_losses": [], "mistakes": [], "least_confident": []}
    probs = logits.softmax(1)
    pred = probs.argmax(1)
    losses = F.cross_entropy(logits, labels, reduction="none")
    confusion = torch.zeros(c, c, dtype=torch.long, device="cpu")
    confusion.index_put_((labels, pred), torch.ones(n, dtype=torch.long, device="cpu"), accumulate=True)
    report["accuracy"] = float((pred == labels).float().mean())
    report["top5"] = (float((probs.topk(5, 1).indices == labels[:, None]).any(1).float().mean()) if c >= 5 else None)
    per_class = []
    for k in range(c):
        tp = int(confusion[k, k])
        support = int(confusion[k].sum())
        predicted = int(confusion[:, k].sum())
        tn = n - support - predicted + tp
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        per_class.append({
            "class": classes[k],
            "precision": precision,
            "recall": recall,
            "f1": f1_score(precision, recall),
            "support": support,
            # one-vs-rest ("is it this class or not"): kept for readers of older reports; it reads high for
            # every class when there are many (98.6% for a class with 50% recall), so nothing shows it
            "accuracy": (tp + tn) / n,
        })
    report["per_class"] = per_class
    report["confusion"] = confusion.tolist()
    pairs = [(int(confusion[t, p]), t, p) for t in range(c) for p in range(c) if t != p and confusion[t, p] > 0]
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    report["most_confused"] = [{"true": classes[t], "predicted": classes[p], "count": cnt}
                               for cnt, t, p in pairs[:MOST_CONFUSED]]

    def row(i: int) -> dict:
        return {
            "path": str(paths[i]),
            "true": classes[int(labels[i])],
            "predicted": classes[int(pred[i])],
            "prob_true": round(float(probs[i, labels[i]]), 6),
            "prob_predicted": round(float(probs[i, pred[i]]), 6),
            "loss": round(float(losses[i]), 6),
        }

    order = losses.argsort(descending=True).tolist()
    wrong = (pred != labels).tolist()
    mistakes = [i for i in order if wrong[i]]
    # "Top losses" are the most confident mistakes: a correct prediction (even an unsure one) is not one,
    # so a model with no mistakes has none rather than a list of its right answers.
    report["top_losses"] = [row(i) for i in mistakes[:top_losses]]
    report["mistakes"] = [row(i) for i in mistakes[:MAX_MISTAKES]]
    # the right answers it was least sure of, a few per class (highest loss first): what there is to look at
    # when there are no mistakes, and what a diagonal cell of the matrix opens
    right = [i for i in order if not wrong[i]]
    per_class_count = [0] * c
    unsure = []
    for i in right:
        k = int(labels[i])
        if per_class_count[k] < LEAST_CONFIDENT_PER_CLASS:
            per_class_count[k] += 1
            unsure.append(i)
    report["least_confident"] = [row(i) for i in unsure]
    return report


def f1_score(precision: float | None, recall: float | None) -> float | None:
    """The harmonic mean of precision and recall; None when either is undefined (no predictions of the class,
    or no images of it), 0.0 when both are 0."""
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def save_report(run_dir: str | os.PathLike, report: dict, prep: Preprocessing | None = None) -> dict:
    """Merge the report into report.json and draw confusion.png and top_losses.png beside it."""

    run_dir = Path(run_dir)
    report = {**report, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # panels say when their numbers are from
    confusion_png(report["confusion"], report["classes"], run_dir / "confusion.png")
    top_losses_png(report["top_losses"], run_dir / "top_losses.png", prep)
    return update_report(run_dir, report)


def compute_logits(model, paths: list[str], prep: Preprocessing, device: torch.device, batch_size: int = 64,
                   workers: int | None = None, ctx: JobContext | None = None) -> tuple[torch.Tensor, dict[int, str]]:
    """Logits for image files (eval transform) -> (logits [N, C] on CPU, {index: reason} for unusable files)."""
    workers = auto_workers(device) if workers is None else workers
    loader = data_loader(ImageFiles(paths, prep), batch_size=batch_size, num_workers=workers,
                         pin_memory=device.type == "cuda")
    out: torch.Tensor | None = None
    errors: dict[int, str] = {}
    done = 0
    model.eval()
    with torch.inference_mode():
        for x, idx, err in loader:
            x = x.to(device, non_blocking=True).float().div_(255)
            if device.type in ("cpu", "cuda"):  # as extraction and training feed their models
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x).float().cpu()
            if out is None:
                out = torch.empty(len(paths), logits.shape[1], device="cpu")
            out[idx] = logits
            errors.update({i: e for i, e in zip(idx.tolist(), err) if e})
            done += len(idx)
            if ctx is not None:
                ctx.progress(ProgressAdvanced("evaluate", done, len(paths)), force=done == len(paths))
                ctx.check()
    return (out if out is not None else torch.empty(0, 0, device="cpu")), errors


def class_mismatch(run_classes: list[str], data_classes: list[str]) -> str | None:
    if list(run_classes) == list(data_classes):
        return None
    missing = [c for c in run_classes if c not in data_classes]
    extra = [c for c in data_classes if c not in run_classes]
    parts = []
    if extra:
        parts.append(f"in the dataset but not the run: {', '.join(extra)}")
    if missing:
        parts.append(f"in the run but not the dataset: {', '.join(missing)}")
    return "; ".join(parts) or "the same names in a different order"


def evaluation_samples(record: RunRecord, dataset: str | None, ctx: JobContext | None,
                       run_dir: str | os.PathLike | None = None, replan: bool = False):
    """(samples, split name): the run's own validation list (its recorded plan, engine.data.splits, replayed on
    the dataset as it is now; `replan` plans it again), or a given dataset (its val part when it has one, else
    every image), whose classes must be the run's."""

    if dataset is None:
        info = scan_run_dataset(record.dataset, ctx=ctx)
        if list(info.classes) != list(record.classes):
            raise DatasetError(
                f"The run's dataset {record.dataset} has changed classes since training "
                f"({class_mismatch(list(record.classes), info.classes)}). Evaluate on a dataset with the run's "
                "classes: tlbench eval RUN --data DATASET.")
        assert run_dir is not None  # the run's own split needs the run
        _, val, _ = plan_for_run(run_dir, record, info, replan, log=ctx.log if ctx is not None else None)
        return val, "val"
    info = scan_dataset(dataset, ctx=ctx)
    diff = class_mismatch(list(record.classes), info.classes)
    if diff:
        raise DatasetError(
            f"{info.root} has classes that differ from the run's ({diff}). The run knows "
            f"{len(record.classes)} classes: {', '.join(record.classes)}. Rename the folders to match, "
            "or evaluate a run trained on these classes.")
    has_split = any(s.split for s in info.samples)
    if has_split:
        return [s for s in info.samples if s.split == "val"], "val"
    return list(info.samples), "all"


def cross_validated_only(run_dir: Path, record: RunRecord, ctx: JobContext | None) -> dict:
    """eval of an auto run that kept no held-out photos: its model was fitted on every photo of its dataset, so
    scoring them again would measure memory, not accuracy. What can honestly be said: the search's
    cross-validated estimate (report.json is left as the run wrote it)."""
    auto = record.get("auto") or {}
    note = (f"{run_dir.name} kept no held-out photos (--holdout 0): its model was fitted on all "
            f"{auto.get('train_images', '?')} of them. Its accuracy is the search's cross-validated estimate "
            f"{auto.get('cv_accuracy', float('nan')):.4f} (report.json). To measure it on photos it never saw: "
            "tlbench eval RUN --data FOLDER, or train with --holdout 0.2.")
    if ctx is not None:
        ctx.emit(JobStarted("eval", f"{run_dir.name}: cross-validated estimate", str(run_dir)))
        ctx.log(note)
    summary = {"run_dir": str(run_dir), "split": "cross-validated", "n": auto.get("train_images"),
               "accuracy": auto.get("cv_accuracy"), "cv_std": auto.get("cv_std"), "tta": False, "top5": None,
               "skipped_images": 0, "report": str(run_dir / "report.json"), "most_confused": [], "note": note}
    if ctx is not None:
        ctx.result.update(summary)
    return summary


def evaluate_run(run_dir: str | os.PathLike, dataset: str | None = None, ctx: JobContext | None = None,
                 checkpoint: str = "best.pt", device: str = "auto", batch_size: int = 64,
                 workers: int | None = None, tta: bool | None = None, precision: str = "recorded",
                 replan: bool = False) -> dict:
    """The evaluation job: load the run's model, predict the images, write report.json and the PNGs.

    Returns a summary (accuracy, top5, n, split, report path); the full report is in report.json.
    `tta`: flip averaging (None: as the run recorded). `precision`: the run's recorded one, or forced.
    `replan`: plan the validation split again from the dataset as it is now (default: the run's recorded plan).
    """

    run_dir = Path(run_dir)
    record = load_config(run_dir)
    if dataset is None and auto_structure(record) is not None and not (record.get("auto") or {}).get(
            "holdout_images"):
        return cross_validated_only(run_dir, record, ctx)
    samples, split = evaluation_samples(record, dataset, ctx, run_dir, replan)
    dev = resolve_device(device)
    if ctx is not None:
        ctx.emit(JobStarted("eval", f"{run_dir.name} on {dataset or record.dataset} ({split})", str(run_dir)))
        ctx.log(f"evaluating {checkpoint} of {run_dir} on {len(samples)} images ({split})")
    model, record = load_run_model(run_dir, dev, checkpoint, precision)
    # the model as the run computed its own report (engine.models.loading.inference_model), in its precision
    model = inference_model(model, record, dev)
    tta = run_tta(record, tta)
    if tta and ctx is not None:
        ctx.log("test-time augmentation: logits averaged with the mirror images'")
    paths = [s.path for s in samples]
    logits, errors = compute_logits(with_tta(model, tta), paths, record.preprocessing, dev, batch_size, workers, ctx)
    keep = [i for i in range(len(paths)) if i not in errors]
    for i, reason in sorted(errors.items()):
        if ctx is not None:
            ctx.log(f"skipped {paths[i]}: {reason}", "warning")
    labels = torch.tensor([samples[i].label for i in keep], dtype=torch.long, device="cpu")
    report = build_report(logits[keep] if keep else torch.empty(0, len(record.classes), device="cpu"), labels,
                          [paths[i] for i in keep], list(record.classes), split, checkpoint)
    if dataset is not None:
        report["dataset"] = str(Path(dataset).expanduser().resolve())
    save_report(run_dir, report, record.preprocessing)
    summary = {"run_dir": str(run_dir), "split": split, "n": report["n"], "accuracy": report["accuracy"], "tta": tta,
               "top5": report["top5"], "skipped_images": len(errors), "report": str(run_dir / "report.json"),
               "most_confused": report["most_confused"][:5]}
    if ctx is not None:
        acc = report["accuracy"]
        ctx.log(f"accuracy {acc:.4f} on {report['n']} images" if acc is not None and math.isfinite(acc)
                else "no usable images to evaluate")
        ctx.result.update(summary)
    return summary
