"""Exporting a run's model to TorchScript or ONNX, with its preprocessing and class names inside.

The exported model takes a batch of RGB images as uint8 [N, 3, H, W] at any size, and does what tlbench
does before its classifier: resize the shorter side, center-crop, scale to [0, 1], normalise. It returns
class probabilities [N, C]. Class names travel with it: TorchScript keeps them as the module's `classes`
attribute and in the archive's extra file `tlbench.json`; ONNX in the model's metadata (`classes`,
`preprocessing`, `tlbench` keys).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import EXPORT_FORMATS
from engine.errors import ConfigError
from engine.events import JobStarted
from engine.runs import load_config

if TYPE_CHECKING:
    from engine.jobs import JobContext

ONNX_OPSET = 18  # Resize with antialiasing


class ExportedClassifier(nn.Module):
    """uint8 images [N, 3, H, W] -> probabilities [N, C], the run's eval preprocessing included."""

    def __init__(self, model: nn.Module, prep: dict, classes: list[str]):
        super().__init__()
        self.model = model
        self.resize_size = int(prep["resize_size"])
        self.crop_size = int(prep["crop_size"])
        self.mode = "bicubic" if prep.get("interpolation") == "bicubic" else "bilinear"
        self.classes = list(classes)  # TorchScript infers List[str] and keeps it on the module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        h, w = x.shape[-2], x.shape[-1]
        # tlbench's eval transform resizes the shorter side to resize_size, then center-crops crop_size.
        # The same window, taken first in the original image and then resized to crop_size, gives the
        # exporter a fixed size after this point (so ONNX keeps dynamic input sizes).
        side = max(1, (self.crop_size * min(h, w)) // self.resize_size)
        x = x.narrow(2, (h - side) // 2, side).narrow(3, (w - side) // 2, side)
        x = F.interpolate(x, size=(self.crop_size, self.crop_size), mode=self.mode, align_corners=False,
                          antialias=True).clamp(0.0, 1.0)
        return self.model(x).softmax(1)


def metadata(record: dict, run_dir: Path) -> dict:
    return {"classes": record["classes"], "preprocessing": record["preprocessing"], "backbone": record["backbone"],
            "mode": record.get("mode"), "run": run_dir.name,
            "input": "uint8 RGB images [N, 3, H, W], any size", "output": "class probabilities [N, C]"}


def export_torchscript(wrapper: ExportedClassifier, meta: dict, path: Path) -> None:
    size = wrapper.crop_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but remains the portable format
        inner = torch.jit.trace(wrapper.model, torch.rand(1, 3, size, size), check_trace=False)
        wrapper.model = inner
        scripted = torch.jit.script(wrapper)
        torch.jit.save(scripted, str(path), _extra_files={"tlbench.json": json.dumps(meta)})


def onnx_modules():
    """(onnx, onnxruntime), or a clear message when the optional extra is missing."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError as err:
        raise ConfigError(
            f"ONNX export needs the onnx, onnxscript and onnxruntime packages ({err.name or err} is not "
            "installed). Install them with pip install 'tlbench[onnx]', or export with --format torchscript."
        ) from None
    return onnx, onnxruntime


def export_onnx(wrapper: ExportedClassifier, meta: dict, path: Path) -> None:
    onnx, _ = onnx_modules()
    from torch.export import Dim

    example = torch.randint(0, 256, (2, 3, wrapper.resize_size + 7, wrapper.resize_size + 3), dtype=torch.uint8)
    dynamic = {"images": {0: Dim("batch", min=1, max=4096), 2: Dim("height", min=wrapper.crop_size, max=16384),
                          3: Dim("width", min=wrapper.crop_size, max=16384)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(path), dynamo=True, dynamic_shapes=dynamic,
                          input_names=["images"], output_names=["probabilities"], opset_version=ONNX_OPSET,
                          external_data=False, verbose=False)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"classes": json.dumps(meta["classes"]),
                                        "preprocessing": json.dumps(meta["preprocessing"]),
                                        "tlbench": json.dumps(meta)})
    from engine.runs import _atomic_write_bytes

    _atomic_write_bytes(path, model.SerializeToString())


def load_exported(path: str | os.PathLike):
    """A callable uint8 batch -> probabilities, and the class names, for either format (used by tests)."""
    path = Path(path)
    if path.suffix == ".onnx":
        onnx, ort = onnx_modules()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        classes = json.loads(session.get_modelmeta().custom_metadata_map["classes"])
        return (lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])), classes
    module = torch.jit.load(str(path), map_location="cpu")
    return (lambda x: module(x)), list(module.classes)


def export_run(run_dir: str | os.PathLike, fmt: str = "torchscript", ctx: JobContext | None = None,
               output: str | os.PathLike | None = None, checkpoint: str = "best.pt") -> dict:
    """The export job: RUN/export/model.pt (TorchScript) or model.onnx, checked against the run's model."""
    from engine.predict import load_run_model

    if fmt not in EXPORT_FORMATS:
        from engine.errors import choice_error

        raise choice_error("export format", fmt, EXPORT_FORMATS)
    if fmt == "onnx":
        onnx_modules()  # fail before loading anything
    run_dir = Path(run_dir)
    record = load_config(run_dir)
    if ctx is not None:
        ctx.emit(JobStarted("export", f"{run_dir.name} to {fmt}", str(run_dir)))
    model, record = load_run_model(run_dir, "cpu", checkpoint)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    path = Path(output) if output else run_dir / "export" / ("model.pt" if fmt == "torchscript" else "model.onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = metadata(record, run_dir)
    reference = ExportedClassifier(model, record["preprocessing"], record["classes"]).eval()
    wrapper = ExportedClassifier(model, record["preprocessing"], record["classes"]).eval()
    if ctx is not None:
        ctx.log(f"exporting {checkpoint} of {run_dir.name} to {fmt}: {path}")
    (export_torchscript if fmt == "torchscript" else export_onnx)(wrapper, meta, path)
    # the export must agree with the run's model, on images of two different shapes
    run, classes = load_exported(path)
    size = record["preprocessing"]["resize_size"]
    diffs = []
    for shape in [(2, 3, size + 5, size + 21), (1, 3, size * 2, size)]:
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            diffs.append(float((run(x) - reference(x)).abs().max()))
    result = {"run_dir": str(run_dir), "format": fmt, "path": str(path), "bytes": path.stat().st_size,
              "classes": classes, "max_abs_diff": max(diffs)}
    if ctx is not None:
        ctx.log(f"checked: probabilities within {max(diffs):.2e} of the run's model")
        ctx.result.update(result)
    return result
