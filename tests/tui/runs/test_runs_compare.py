"""Comparing runs without a screen (tui.runs.compare): the config diff, value formatting, curves, labels."""

from __future__ import annotations

import json

from tui.runs.compare import (
    MISSING,
    config_diff,
    flatten,
    format_value,
    read_metric_rows,
    short_key,
    short_labels,
    val_curves,
)

PETS = "20260103-090000-oxford-pets-efficientnet_lite0-probe"
PETS_FULL = "20260102-090000-oxford-pets-efficientnet_lite0-full"


def test_the_diff_keeps_only_keys_that_differ_flattened_with_dots():
    a = {"dataset": "/d/pets", "backbone": "resnet18", "lr": 0.001, "epochs": 5, "amp": True, "created": "2026-01-01",
         "preprocessing": {"crop_size": 64, "mean": [0.485, 0.456, 0.406]}, "versions": {"torch": "2.14"},
         "classes": ["cat", "dog"], "weights": None, "extra": {}}
    b = {"dataset": "/d/pets", "backbone": "resnet18", "lr": 0.01, "epochs": 5.0, "amp": 1, "created": "2026-01-02",
         "preprocessing": {"crop_size": 96, "mean": [0.485, 0.456, 0.406]}, "versions": {"torch": "2.14"},
         "classes": ["cat", "dog"], "weights": None, "patience": 3, "extra": {}}
    assert flatten(a)["preprocessing.mean"] == [0.485, 0.456, 0.406] and flatten(a)["extra"] == {}
    diff = config_diff([a, b])
    # lr first (a key people compare first), then the rest alphabetically; created always differs: left out;
    # 5 and 5.0 are the same number, true is not 1, a key one run lacks is MISSING there
    assert diff == [("lr", [0.001, 0.01]), ("amp", [True, 1]), ("patience", [MISSING, 3]),
                    ("preprocessing.crop_size", [64, 96])]
    assert config_diff([a, dict(a)]) == []
    three = config_diff([a, b, {}])  # a run whose config.json is empty: every key is absent there
    assert ("backbone", ["resnet18", "resnet18", MISSING]) in three


def test_values_are_shortened_readably_within_their_width():
    classes = [f"class_{i}" for i in range(37)]
    assert format_value(classes, 24) == "37: class_0, class_1, c…"
    assert format_value([0.485, 0.456, 0.406], 30) == "[0.485, 0.456, 0.406]"
    assert format_value(1e-05, 10) == "1e-05" and format_value(0.1 + 0.2, 10) == "0.3"
    assert format_value(None, 10) == "null" and format_value(True, 10) == "true"
    assert format_value(MISSING, 10) == "absent"
    path = "/home/someone/data/oxford-iiit-pets/images"
    short = format_value(path, 20)
    assert len(short) == 20 and short.endswith("pets/images") and "…" in short
    for value in (classes, path, 123456789.123, {"a": [1, 2, 3]}, "x" * 50):
        for width in (1, 5, 12):
            assert len(format_value(value, width)) <= width


def test_curves_skip_damaged_lines_and_missing_values(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert read_metric_rows(run) == []  # no metrics.jsonl yet: no rows, no error
    rows = [{"epoch": 1, "val_acc": 0.5, "val_loss": 1.2}, {"epoch": 2, "val_acc": 0.6, "val_loss": float("nan")},
            {"val_acc": 0.7}]
    lines = [json.dumps(rows[0]), '{"epoch": 9, "val_a', json.dumps(rows[1]), "[1, 2]", "", json.dumps(rows[2])]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    read = read_metric_rows(run)
    assert len(read) == 3 and read[0] == rows[0]
    curves = val_curves(read)
    assert curves["val_acc"] == [(1.0, 0.5), (2.0, 0.6), (3.0, 0.7)]  # a row without an epoch: the next one
    assert curves["val_loss"] == [(1.0, 1.2)]  # NaN and a missing value leave gaps
    assert val_curves([]) == {"val_acc": [], "val_loss": []}


def test_labels_and_keys_keep_what_tells_them_apart():
    assert short_labels([PETS, PETS_FULL]) == ["probe", "full"]  # date and time dropped: the rest differs
    same = ["20260103-090000-pets-resnet18-probe", "20260103-100000-pets-resnet18-probe"]
    assert short_labels(same) == ["090000", "100000"]
    assert short_labels([PETS]) == [PETS]
    assert short_key("preprocessing.crop_size", 20) == "preproces….crop_size"
    assert short_key("lr", 20) == "lr" and len(short_key("a_very_long_key_without_dots", 10)) == 10
