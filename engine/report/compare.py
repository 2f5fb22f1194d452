"""The comparison page of several runs: their curves overlaid, the settings that differ, and each run's
accuracy with its cross-validation mean ± std where the run has one (--mode auto's search)."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from engine.report.charts import PALETTE, line_chart
from engine.report.results import epoch_series
from engine.report.sections import number, setting_text
from engine.report.sources import RunFiles

# differ between any two runs by construction; each run's own section shows them
NOT_COMPARED = frozenset({"created", "resumed", "auto.search_seconds", "dataset_fingerprint"})
ABSENT = "(absent)"


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"preprocessing": {"mean": …}} -> {"preprocessing.mean": …}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _written(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def differing_settings(runs: list[RunFiles]) -> list[dict]:
    """The config keys whose values are not all equal (a key one run lacks counts as differing)."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f} - NOT_COMPARED)
    out = []
    for key in keys:
        values = [f.get(key, ABSENT) for f in flat]
        if len({_written(v) for v in values}) > 1:
            out.append({"key": key, "cells": [v if v is ABSENT else setting_text(v) for v in values]})
    return out


def cross_validation(run: RunFiles) -> tuple[str, str, Any]:
    """(CV accuracy, its std across folds, folds) of the run's winning recipe; "—" where it has none."""
    board = run.leaderboard or run.config.get("auto")
    if not isinstance(board, dict):
        return "—", "—", None
    winner = next((e for e in board.get("leaderboard") or [] if e.get("recipe") == board.get("winner")), {})
    return number(board.get("cv_accuracy")), number(winner.get("cv_std")), board.get("folds")


def comparison(runs: list[RunFiles], anchors: list[str]) -> dict:
    rows = []
    for i, (run, anchor) in enumerate(zip(runs, anchors)):
        r = run.report or {}
        cv, std, folds = cross_validation(run)
        best = max((float(m["val_acc"]) for m in run.metrics if isinstance(m.get("val_acc"), (int, float))),
                   default=None)
        rows.append({"name": run.name, "anchor": anchor, "colour": PALETTE[i % len(PALETTE)],
                     "accuracy": number(r.get("accuracy")), "top5": number(r.get("top5")),
                     "best_val_acc": number(best), "cv": cv, "cv_std": std, "folds": folds,
                     "epochs": len(run.metrics), "backbone": run.config.get("backbone"),
                     "mode": run.config.get("mode")})
    return {"rows": rows, "charts": overlaid_curves(runs), "settings": differing_settings(runs),
            "names": [r.name for r in runs]}


def overlaid_curves(runs: list[RunFiles]) -> list[Markup]:
    """Validation accuracy and loss of every run on shared axes, one colour per run (its training curve
    dashed in the same colour)."""
    charts = []
    for key, title in (("acc", "accuracy per epoch"), ("loss", "loss per epoch")):
        series = []
        for i, run in enumerate(runs):
            colour = PALETTE[i % len(PALETTE)]
            series.append(epoch_series(run.metrics, f"val_{key}", f"{i + 1} {run.name}", colour))
            series.append(epoch_series(run.metrics, f"train_{key}", f"{i + 1} train", colour, dashed=True))
        for s in series:
            s.key = f"{s.key}:{s.label.split(' ', 1)[0]}"  # data-series "val_acc:2": the run's number
        charts.append(line_chart(series, title + " (solid: validation, dashed: train)", "epoch",
                                 "accuracy" if key == "acc" else "loss", f"compare-{key}"))
    return charts
