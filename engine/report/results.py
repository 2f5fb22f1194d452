"""The report's result sections, as plain data for the template: the curves, the confusion matrix, the
per-class metrics, the most confused pairs, the top losses with Grad-CAM, robustness, attacks, dreams and the
dataset audit's suspects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.report.charts import PALETTE, Series, line_chart
from engine.report.pictures import LARGE, THUMB, embed_file, gradcam_pictures
from engine.report.sections import number, shown_path
from engine.report.sources import RunFiles

EXAMPLES_PER_PAIR = 3  # mistakes shown for each most-confused pair …
PAIRS_WITH_PICTURES = 8  # … of the first pairs (the others by name and count: 128 px rows add up)
SUSPECTS = 12  # label issues and outliers of the audit shown with their pictures
ATTACK_IMAGES = 8
DREAMS = 24


def epoch_series(metrics: list[dict], key: str, label: str, colour: str, dashed: bool = False) -> Series:
    pts = [(float(r["epoch"]), float(r[key])) for r in metrics
           if isinstance(r.get("epoch"), (int, float)) and isinstance(r.get(key), (int, float))]
    return Series(label, pts, colour, dashed, key=key)


def curves(files: RunFiles) -> dict:
    """Loss and accuracy per epoch (train dashed, validation solid) and the learning rate: a chart when it
    changes (one-cycle, fine-tuning phases), a sentence when it is one value throughout."""
    m = files.metrics
    if not m:
        return {"charts": [], "lr_note": None}
    charts = [
        line_chart([epoch_series(m, "train_loss", "train", PALETTE[0], True),
                    epoch_series(m, "val_loss", "validation", PALETTE[1])], "loss per epoch", "epoch", "loss",
                   "loss"),
        line_chart([epoch_series(m, "train_acc", "train", PALETTE[0], True),
                    epoch_series(m, "val_acc", "validation", PALETTE[1])], "accuracy per epoch", "epoch",
                   "accuracy", "accuracy"),
    ]
    lr = epoch_series(m, "lr", "learning rate", PALETTE[2])
    rates = {y for _, y in lr.points}
    if len(rates) > 1:
        charts.append(line_chart([lr], "learning rate (at the end of each epoch)", "epoch", "lr", "lr",
                                 log_y=all(y > 0 for y in rates)))
    note = (f"Learning rate {next(iter(rates)):g} in every epoch." if len(rates) == 1
            else None if rates else "No learning rate recorded (a head solved in one step, as --mode auto does).")
    return {"charts": charts, "lr_note": note}


def _cell_colour(share: float, diagonal: bool) -> str:
    """White to blue (right) or to red (confused) by the cell's share of its row."""
    if share <= 0:
        return "#ffffff"
    fade = int(round(235 - 200 * min(1.0, share)))
    return f"#{fade:02x}{fade:02x}ff" if diagonal else f"#ff{fade:02x}{fade:02x}"


def confusion(files: RunFiles) -> dict | None:
    """Rows true, columns predicted; each cell shaded by its share of the row, its count written."""
    r = files.report or {}
    matrix, classes = r.get("confusion"), r.get("classes") or files.classes
    if not matrix or len(matrix) != len(classes):
        return None
    rows = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        rows.append({"class": classes[i], "total": sum(row), "cells": [
            {"n": n, "colour": _cell_colour(n / total, i == j), "dark": n / total > 0.6} for j, n in enumerate(row)]})
    return {"classes": classes, "rows": rows}


def per_class(files: RunFiles) -> list[dict]:
    return [{"class": str(p.get("class")), "precision": p.get("precision"), "recall": p.get("recall"),
             "f1": p.get("f1"), "support": p.get("support"), "precision_text": number(p.get("precision"), 3),
             "recall_text": number(p.get("recall"), 3), "f1_text": number(p.get("f1"), 3)}
            for p in (files.report or {}).get("per_class", [])]


def most_confused(files: RunFiles) -> list[dict]:
    """The pairs most often mistaken, each with a few of its images (report.json's mistakes, highest loss
    first)."""
    r = files.report or {}
    root = str(files.config.get("dataset") or "")
    mistakes = r.get("mistakes") or r.get("top_losses") or []
    out = []
    for k, pair in enumerate(r.get("most_confused", [])):
        examples = [m for m in mistakes if m.get("true") == pair.get("true")
                    and m.get("predicted") == pair.get("predicted")][:EXAMPLES_PER_PAIR if k < PAIRS_WITH_PICTURES else 0]
        out.append({**pair, "examples": [{"path": shown_path(m["path"], root), "picture": embed_file(m["path"], THUMB)}
                                         for m in examples]})
    return out


def top_losses(files: RunFiles, gradcam: bool, check: Callable[[], None] | None) -> tuple[list[dict], str | None]:
    """The most confident mistakes at 224 px, each beside its Grad-CAM for the class the model predicted."""
    items = (files.report or {}).get("top_losses") or []
    root = str(files.config.get("dataset") or "")
    if not items:
        return [], None
    if gradcam:
        pics, note = gradcam_pictures(files.run_dir, items, files.classes, LARGE, check)
    else:
        pics = [{"picture": embed_file(i["path"], LARGE), "overlay": None, "note": None} for i in items]
        note = "Grad-CAM left out (--no-gradcam)."
    return [{**i, "shown": shown_path(i["path"], root), "loss_text": number(i.get("loss"), 3),
             "prob_true_text": number(i.get("prob_true"), 3), "prob_predicted_text": number(i.get("prob_predicted"), 3),
             **p} for i, p in zip(items, pics)], note


def robustness(files: RunFiles) -> list[dict]:
    """Each sweep (method, norm) of report.json: robust accuracy per eps, as a table and a chart."""
    sweeps = (files.report or {}).get("robustness") or {}
    out = []
    for key, sweep in sweeps.items() if isinstance(sweeps, dict) else []:
        rows = [r for r in sweep.get("rows", []) if isinstance(r, dict)]
        pts = [(float(r["eps"]), float(r["accuracy"])) for r in rows if isinstance(r.get("eps"), (int, float))
               and isinstance(r.get("accuracy"), (int, float))]
        chart = line_chart([Series(key, pts, PALETTE[1], key="robust_accuracy")], f"robust accuracy ({key})",
                           "eps", "accuracy", f"robustness-{key}",
                           x_ticks=[(float(r["eps"]), str(r.get("eps_text", r["eps"]))) for r in rows
                                    if isinstance(r.get("eps"), (int, float))], y_range=(0.0, 1.0))
        out.append({"key": key, "rows": [{**r, "accuracy_text": number(r.get("accuracy"))} for r in rows],
                    "chart": chart, "steps": sweep.get("steps"), "images": sweep.get("images"),
                    "precision": sweep.get("precision"), "created": sweep.get("created")})
    return out


def attacks(files: RunFiles) -> list[dict]:
    """Each attack folder: its settings, and per image the original, the adversarial image and the perturbation."""
    out = []
    for a in files.attacks:
        images = []
        for r in [r for r in a.get("results", []) if isinstance(r, dict) and "files" in r][:ATTACK_IMAGES]:
            before, after = (r.get("before") or [{}])[0], (r.get("after") or [{}])[0]
            images.append({"path": Path(str(r.get("path", ""))).name, "success": bool(r.get("success")),
                           "before": f"{before.get('class', '?')} {number(before.get('prob'), 3)}",
                           "after": f"{after.get('class', '?')} {number(after.get('prob'), 3)}",
                           "linf_255": number(r.get("linf_255"), 2),
                           "pictures": [(k, embed_file(r["files"].get(k, ""), LARGE))
                                        for k in ("original", "adversarial", "perturbation")]})
        target = a.get("target") or {}
        out.append({"folder": Path(a["dir"]).name, "method": a.get("method"), "norm": a.get("norm"),
                    "eps": a.get("eps_text"), "steps": a.get("steps"), "target": target.get("class"),
                    "succeeded": a.get("succeeded"), "attacked": a.get("attacked"), "images": images})
    return out


def dreams(files: RunFiles) -> list[dict]:
    return [{"name": p.name, "picture": embed_file(p, LARGE)} for p in files.dreams[-DREAMS:]]


def audit(files: RunFiles) -> dict | None:
    """The dataset's last audit: likely label errors and outliers with their pictures, duplicate groups and
    class balance; each suspect says whether the exclude list leaves it out."""
    a = files.audit
    if not a:
        return None
    root = str(a.get("dataset") or files.config.get("dataset") or "")
    left_out = set(files.excluded)

    def item(d: dict, text: str) -> dict:
        path = str(d.get("path", ""))
        return {"path": shown_path(path, root), "text": text, "score": number(d.get("score"), 3),
                "excluded": str(Path(path).resolve()) in left_out, "picture": embed_file(path, THUMB)}

    balance = a.get("imbalance")
    balance = balance if isinstance(balance, dict) else {}
    return {
        "backbone": a.get("backbone"), "images": a.get("images"), "cv_accuracy": number(a.get("cv_accuracy")),
        "labels": [item(d, f"labelled {d.get('given')}, looks like {d.get('suggested')}")
                   for d in a.get("label_issues", [])[:SUSPECTS]],
        "label_count": len(a.get("label_issues", [])),
        "outliers": [item(d, f"nearest class {d.get('nearest')}") for d in a.get("outliers", [])[:SUSPECTS]],
        "outlier_count": len(a.get("outliers", [])),
        "duplicates": len(a.get("duplicates", [])), "leaking": a.get("leaking_groups"),
        "ratio": balance.get("ratio"), "imbalanced": balance.get("imbalanced"),
    }
