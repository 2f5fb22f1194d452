"""The datasets of the workflow scenarios (tests/engine/test_workflow.py, tests/tui/test_tui_workflow.py): photos
with planted label errors, an exact copy that straddles the plain split and a near duplicate, for the audit to
find and the run's plan to keep together."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.data import CATS_DOGS
from PIL import Image

from engine.data.scan import scan_dataset, split_dataset


def crop(src: np.ndarray, seed: int, size: int = 48) -> Image.Image:
    """A random crop of a photo, resized: crops of one photo form a class (distinct, but learnable)."""
    rng = np.random.default_rng(seed)
    side = int(rng.integers(min(src.shape[:2]) // 4, min(src.shape[:2]) // 2))
    y, x = rng.integers(0, src.shape[0] - side), rng.integers(0, src.shape[1] - side)
    return Image.fromarray(src[y:y + side, x:x + side]).resize((size, size), Image.Resampling.BILINEAR)


def generated_photos(root: Path, per_class: int = 12) -> Path:
    """Three classes of crops of scikit-image's bundled photos, and two crops of the coffee photo filed under the
    other classes (label errors for the audit to find)."""
    data = pytest.importorskip("skimage.data")  # a test dependency (pyproject's [test]); its photos ship with it
    sources = {"coffee": data.coffee(), "rocket": data.rocket(), "astronaut": data.astronaut()}
    for k, (name, src) in enumerate(sources.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            crop(src, 100 * k + i).save(root / name / f"{name}_{i}.png")
    crop(sources["coffee"], 900).save(root / "rocket" / "flip_a.png")
    crop(sources["coffee"], 901).save(root / "astronaut" / "flip_b.png")
    return root


def real_photos(root: Path, per_class: int = 20) -> Path:
    """The first photos of each class of cats-dogs-dev, two of them filed under the other class."""
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for path in sorted((CATS_DOGS / cls).glob("*.jpg"), key=lambda p: int(p.stem.split(".")[1]))[:per_class]:
            shutil.copy2(path, root / cls / path.name)
    shutil.copy2(CATS_DOGS / "dogs" / "dog.101.jpg", root / "cats" / "dog.101.jpg")
    shutil.copy2(CATS_DOGS / "cats" / "cat.101.jpg", root / "dogs" / "cat.101.jpg")
    return root


def plant_duplicates(root: Path, cls: str) -> dict[str, tuple[str, str]]:
    """An exact copy that falls on the other side of the plain split from its original (so the run's plan must
    move it), and a near duplicate (enlarged, re-encoded as JPEG). {"exact": (original, copy), "near": (...)}."""
    originals = sorted(p for p in (root / cls).iterdir() if p.is_file())
    planted = {}
    for n, original in enumerate(originals):
        copy = original.with_name(f"{original.stem}_copy{original.suffix}")
        shutil.copy2(original, copy)
        _, val = split_dataset(scan_dataset(root), 0.2, 0)
        on_val = {s.path for s in val}
        if (str(original) in on_val) != (str(copy) in on_val):
            planted["exact"] = (str(original), str(copy))
            near_from = originals[(n + 1) % len(originals)]
            break
        copy.unlink()
    assert "exact" in planted, "no original whose copy lands on the other side of the split"
    near = root / cls / f"{near_from.stem}_larger.jpg"
    with Image.open(near_from) as img:
        larger = img.convert("RGB").resize((img.width * 4 // 3, img.height * 4 // 3), Image.Resampling.BILINEAR)
    larger.save(near, quality=90)
    planted["near"] = (str(near_from), str(near))
    return planted
