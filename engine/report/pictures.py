"""Pictures embedded in the report: image files downscaled and JPEG-encoded as data: URIs (so the one file
holds them, and a 37-class report stays a few MB), and Grad-CAM overlays of the top losses, computed on the
CPU with the run's own model (engine.models.loading, engine.evaluate.explain).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from engine.core.errors import TlbenchError
from engine.data.images import ImageProblem, load_rgb
from engine.evaluate.explain import explain_pil, overlay
from engine.models.loading import load_run_model

THUMB = 128  # px, the longer side: suspects, confused pairs, excluded files, duplicates
LARGE = 224  # px: top losses and their Grad-CAM, attacks, dreams
QUALITY = 82  # JPEG quality: artefacts invisible at these sizes, ~4-12 kB an image


@dataclass
class Picture:
    """An embedded image: its data URI, its size after downscaling, and whether it is smaller than the size
    it is shown at (tiny images are then drawn with sharp pixels rather than blurred)."""

    uri: str
    width: int
    height: int
    small: bool


def embed(img: Image.Image, max_side: int) -> Picture:
    """The image downscaled to `max_side` (never enlarged: the browser scales it up) as a JPEG data URI."""
    img = img.convert("RGB")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=QUALITY, optimize=True, subsampling=0)  # 4:4:4: small pictures keep their colours
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Picture(uri, img.width, img.height, small=max(img.size) * 2 <= max_side)


def embed_file(path: str | os.PathLike, max_side: int = THUMB) -> Picture | None:
    """An image file embedded, or None when it is gone or unreadable (the report says so in its place)."""
    try:
        return embed(load_rgb(path, min_size=max_side), max_side)
    except (ImageProblem, OSError, ValueError):
        return None


def gradcam_pictures(run_dir: Path, items: list[dict], classes: list[str], size: int = LARGE,
                     check: Callable[[], None] | None = None) -> tuple[list[dict], str | None]:
    """For each top-loss item ({"path", "predicted", …}): {"picture", "overlay", "note"} — the image and the
    Grad-CAM of the class the model predicted (why it got it wrong), on the CPU. Returns the list and a note
    for the whole section (the model could not be loaded: the pictures come without overlays)."""
    try:
        model, record = load_run_model(run_dir, "cpu")  # the CPU: a report must not compete with a training job
    except TlbenchError as err:
        return [{"picture": embed_file(i["path"], size), "overlay": None, "note": None} for i in items], (
            f"Grad-CAM left out: the run's model could not be loaded ({err})")
    out = []
    for item in items:
        if check is not None:
            check()
        entry: dict = {"picture": None, "overlay": None, "note": None}
        out.append(entry)
        try:
            img = load_rgb(item["path"])
        except (ImageProblem, OSError) as err:
            entry["note"] = f"{item['path']} could not be read ({err})"
            continue
        entry["picture"] = embed(img, size)
        target = classes.index(item["predicted"]) if item.get("predicted") in classes else None
        try:
            heat, _info = explain_pil(model, list(record.classes), record.preprocessing, img, "gradcam", target)
        except TlbenchError as err:  # a backbone without a spatial stage: the picture alone
            entry["note"] = str(err)
            continue
        if float(heat.max()) <= 0:  # the overlay would be the image itself: say so instead
            entry["note"] = f"Grad-CAM finds no evidence for {item.get('predicted')} here (the map is zero)."
            continue
        entry["overlay"] = embed(overlay(img, heat), size)
    return out, None
