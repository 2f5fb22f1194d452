"""Comparing runs, the parts without a screen: config.json flattened and diffed, validation curves read from
metrics.jsonl, short labels that tell run names apart. Plain data in, plain data out (no textual, no torch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tui.widgets.fitline import ELLIPSIS, shorten_middle

# The keys people compare first, in this order; every other key follows alphabetically.
CONFIG_KEYS_FIRST = ("dataset", "backbone", "mode", "epochs", "batch_size", "lr", "img_size", "seed",
                     "val_fraction", "weights_identity", "device_resolved", "train_images", "val_images")
# Differs between any two runs by construction, and the run's name already says it.
NOT_COMPARED = frozenset({"created"})
CURVE_KEYS = ("val_acc", "val_loss")


class Missing:
    """A key one run's config.json does not have (shown as absent, never as null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted keys: {"preprocessing": {"mean": [...]}} -> {"preprocessing.mean": [...]}.
    Lists stay values; an empty object stays a value ({}), so it is still compared."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _same(values: Sequence[Any]) -> bool:
    """Equal as JSON would write them: true is not 1, 1 is 1.0, and an absent key is unlike every value."""
    if any(v is MISSING for v in values):
        return all(v is MISSING for v in values)
    written = {json.dumps(v, sort_keys=True, default=str) for v in values}
    if len(written) == 1:
        return True
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(set(values)) == 1


def key_order(key: str) -> tuple[int, str]:
    top = key.split(".", 1)[0]
    rank = CONFIG_KEYS_FIRST.index(top) if top in CONFIG_KEYS_FIRST else len(CONFIG_KEYS_FIRST)
    return rank, key


def config_diff(configs: Sequence[dict]) -> list[tuple[str, list[Any]]]:
    """(dotted key, one value per config) for every key whose values are not all the same; a config without
    the key has MISSING there. Keys in CONFIG_KEYS_FIRST order, then alphabetical."""
    flat = [flatten(c) if isinstance(c, dict) else {} for c in configs]
    keys = {k for f in flat for k in f if k.split(".", 1)[0] not in NOT_COMPARED}
    rows = []
    for key in sorted(keys, key=key_order):
        values = [f.get(key, MISSING) for f in flat]
        if not _same(values):
            rows.append((key, values))
    return rows


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def format_value(value: Any, width: int) -> str:
    """A config value in at most `width` characters, readable: numbers short (0.001, 1e-05), true/false/null as
    in config.json, a long list as its count and first items ("37: Abyssinian, Bengal, …"), a long text
    shortened in the middle (a path keeps its end). MISSING is "absent"."""
    if value is MISSING:
        return shorten_middle("absent", width)
    if isinstance(value, list):
        items = ", ".join(_scalar(v) for v in value)
        whole = f"[{items}]"
        if len(whole) <= width:
            return whole
        head = f"{len(value)}: {items}"
        if len(head) <= width or width <= 0:
            return head[:max(0, width)]
        return head[:width - 1] + ELLIPSIS
    return shorten_middle(_scalar(value), width, tail=0.6)


def read_metric_rows(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl's rows, skipping lines that are not JSON objects (a damaged or foreign line) instead of
    losing the whole curve; no file (a run that has not finished an epoch) is no rows."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def val_curves(rows: Sequence[dict]) -> dict[str, list[tuple[float, float]]]:
    """{"val_acc": [(epoch, value)], "val_loss": [...]}: finite numbers only (NaN and missing values leave a
    gap); a row without an epoch number counts as the next epoch."""
    curves: dict[str, list[tuple[float, float]]] = {k: [] for k in CURVE_KEYS}
    for i, row in enumerate(rows):
        epoch = row.get("epoch")
        x = epoch if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else i + 1
        for key in CURVE_KEYS:
            y = row.get(key)
            if isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y):
                curves[key].append((float(x), float(y)))
    return curves


def short_labels(names: Sequence[str]) -> list[str]:
    """Each run name cut to the parts that tell it from the others ("full" and "probe" out of
    "20260103-090000-pets-efficientnet_lite0-probe" and "20260102-090000-pets-efficientnet_lite0-full"): the
    "-"-separated parts every name shares are left out, and so are the date and time when the rest still tells
    every run apart. A name with nothing of its own stays whole."""
    if len(names) < 2:
        return list(names)
    parts = [name.split("-") for name in names]
    shared = set.intersection(*(set(p) for p in parts))
    own = [[t for t in p if t not in shared] for p in parts]
    words = [[t for t in p if not t.isdigit()] for p in own]
    if all(words) and len({tuple(w) for w in words}) == len(words):
        own = words
    return ["-".join(o) if o else name for name, o in zip(names, own)]


def short_key(key: str, width: int) -> str:
    """A dotted key in at most `width` characters, its last part kept whole where it fits
    ("preproces….crop_size"): the last part is what the value is."""
    if len(key) <= width or "." not in key:
        return shorten_middle(key, width, tail=0.6)
    prefix, last = key.rsplit(".", 1)
    room = width - len(last) - 1
    if room < 2:
        return shorten_middle(key, width, tail=0.6)
    return shorten_middle(prefix, room, tail=0.0) + "." + last
