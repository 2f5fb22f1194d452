"""Grad-CAM overlays for the workbench (`h` on a preview, the Results images, the attack's pair): what the model
looks at, from engine.evaluate.explain, against the current run (or a backbone's ImageNet head)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from engine.data.images import load_rgb
from tui.engine_calls import explain_pil, load_target_model, overlay, resolve_device
from tui.widgets.fitline import Part
from tui.widgets.thumbnails import MemoryImage


class HeatCaption(str):
    """"Grad-CAM of <class> 93% · <model>", which also knows its pieces: a narrow caption keeps the class (from
    its middle) and the probability whole, and lets the words and the model's name go (issue 24)."""

    class_name: str
    prob: float
    model: str

    def __new__(cls, class_name: str, prob: float, model: str) -> HeatCaption:
        self = super().__new__(cls, f"Grad-CAM of {class_name} {100 * prob:.0f}% · {model}")
        self.class_name, self.prob, self.model = class_name, prob, model
        return self

    def parts(self) -> list[Part]:
        return [Part(self.class_name, shrink=True, least=6), Part(f" {100 * self.prob:.0f}%"),
                Part(f" · {self.model}", shrink=True, least=10, tail=0.7, optional=True),
                Part(" Grad-CAM", optional=True)]


DEFAULT_BACKBONE = "efficientnet_lite0"  # with no run: the backbone that ships its weights
_cache: OrderedDict[tuple, tuple[MemoryImage, str]] = OrderedDict()
_lock = threading.Lock()
CACHE_SIZE = 32


def heatmap_overlay(source: str | MemoryImage, run_dir: Path | None, backbone: str | None = None,
                    target: int | None = None) -> tuple[MemoryImage, str]:
    """(the overlay as a MemoryImage, a caption "Grad-CAM of <class> 93% · <model>") for an image file or an image
    in memory (an adversarial example). Runs the model: call it from a thread worker, never the UI thread."""
    key = (source, str(run_dir), backbone, target)  # a MemoryImage hashes by identity; the cache keeps it alive
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    tm = load_target_model(run_dir, None if run_dir is not None else (backbone or DEFAULT_BACKBONE),
                           resolve_device("auto"))
    img = load_rgb(source) if isinstance(source, str) else source.image.convert("RGB")
    # a run that averages each image with its mirror image is explained as its eval and predict report it
    tta = bool(tm.record.get("tta")) if tm.record is not None else False
    heat, info = explain_pil(tm.model, tm.classes, tm.prep, img, "gradcam", target, tta)
    name = source if isinstance(source, str) else source.name
    result = (MemoryImage(overlay(img, heat), f"heatmap {name}"), HeatCaption(info["class"], info["prob"], tm.name))
    with _lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result
