"""Exporting a run's model to torch.export (pt2, the default), ONNX or TorchScript (legacy), with its
preprocessing and class names inside.

The exported model takes a batch of RGB images as uint8 [N, 3, H, W] at any size, decoded in full, and does
what `tlbench predict` does before its classifier, with the same code: resize the shorter side (antialiased,
on uint8 values), center-crop, scale to [0, 1], normalise. It returns class probabilities [N, C]. Class
names travel with it: pt2 in the archive's extra file `tlbench.json` (`torch.export.load(path,
extra_files={"tlbench.json": ""})`); TorchScript as the module's `classes` attribute and in the same extra file;
ONNX in the model's metadata (`classes`, `preprocessing`, `tlbench` keys). pt2 and ONNX come from the same
torch.export graph, with a dynamic batch, height and width.

torch.export records every device the traced code names. The pt2 program therefore does its preprocessing on
the host by name (torch's antialiased uint8 resize is a CPU kernel: images on a GPU are copied there) and then
copies the batch into a tensor made from one of its own buffers, so the rest of the graph names no device:
`torch.export.load(path).module().to("cuda")` runs the model on the GPU. A backbone whose forward creates
tensors on a fixed device (some timm ViTs with RoPE) still ties its part of the graph to the CPU it was
exported on; the metadata's `device` says which ("any", or "cpu") and `load_exported` refuses another device.

After writing, the export is checked against `tlbench predict` (engine.serve.predict.predict_paths with the run's
model) on real images of the run's dataset, each decoded in full and given to the export as it is.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from engine.core.errors import ConfigError, DatasetError, choice_error
from engine.core.events import JobStarted
from engine.core.files import atomic_write_bytes
from engine.core.records import Preprocessing, RunRecord
from engine.core.runs import load_config
from engine.data.exclude import exclude_file, read_exclude
from engine.data.images import load_rgb
from engine.data.layouts import find_items
from engine.data.loaders import resize_center_crop
from engine.data.splits import load_plan
from engine.evaluate.evaluation import run_tta, with_tta
from engine.models.loading import RunModel, load_run_model, run_precision
from engine.serve import EXPORT_FILES, EXPORT_FORMATS
from engine.serve.predict import predict_paths

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

ONNX_OPSET = 18  # Resize with antialiasing


class ExportedClassifier(nn.Module):
    """uint8 images [N, 3, H, W] -> probabilities [N, C], the run's eval preprocessing included.

    The preprocessing is `tlbench predict`'s own code (engine.data.loaders.resize_center_crop, which its eval
    transform runs on the fully decoded image), so the export sees the pixels predict sees: the same ones
    under TorchScript; under ONNX, onnxruntime's antialiased uint8 Resize, within a grey level on a few
    pixels of torch's.
    """

    def __init__(self, model: nn.Module, prep: Preprocessing, classes: list[str]):
        super().__init__()
        self.model = model
        # plain attributes: TorchScript compiles forward() against them
        self.resize_size = prep.resize_size
        self.crop_size = prep.crop_size
        self.mode = prep.resize_mode
        self.classes = list(classes)  # TorchScript infers List[str] and keeps it on the module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # torch's antialiased uint8 resize is a CPU kernel: images on a GPU take a round trip
        x = images if images.device.type == "cpu" else images.cpu()
        x = resize_center_crop(x, self.resize_size, self.crop_size, self.mode)
        if images.device.type != "cpu":
            x = x.to(images.device)
        return self.model(x.float() / 255.0).softmax(1)


class PortableClassifier(ExportedClassifier):
    """The pt2 export's wrapper: preprocessing on the host, the model wherever `.to()` put the module."""

    anchor: torch.Tensor  # a buffer

    def __init__(self, model: nn.Module, prep: Preprocessing, classes: list[str]):
        super().__init__(model, prep, classes)
        # the batch reaches the model by a copy into this buffer expanded: it moves with the module, whereas
        # x.to(device) would write the device of the trace into the graph
        self.register_buffer("anchor", torch.zeros((), device="cpu"), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # onto the host by name, as ExportedClassifier does it: _to_copy is recorded even for CPU input, and
        # unlike Tensor.to it adds no check that the input is on the device of the trace
        x = torch.ops.aten._to_copy.default(images, device=torch.device("cpu"))
        x = resize_center_crop(x, self.resize_size, self.crop_size, self.mode)
        x = self.anchor.expand(x.shape).clone().copy_(x)  # float32, on the anchor's device
        return self.model(x / 255.0).softmax(1)


def device_bound(program: torch.export.ExportedProgram) -> list[str]:
    """What in a PortableClassifier program keeps the model on the device it was exported on: nodes outside
    the host-side preprocessing that name a device (a tensor the backbone creates in its forward, a `.to()`),
    and tensor constants (`.module().to()` leaves them where they are). Empty: it runs on any device."""
    anchor = next(name for name, buffer in program.graph_signature.inputs_to_buffers.items() if buffer == "anchor")
    onto_device = next(n for n in program.graph.nodes if n.target in (torch.ops.aten.copy_.default,
                                                                      torch.ops.aten.copy.default)
                       and anchor in {a.name for a in _ancestors(n)})
    batch = onto_device.args[1]
    host = _ancestors(batch) | {batch}  # the preprocessed batch and everything it was made from
    named = [str(n.target) for n in program.graph.nodes if n not in host and
             ("device" in n.kwargs or any(isinstance(a, torch.device) for a in n.args))]
    # tensors the traced code held as plain attributes (non-persistent buffers, the anchor among them, are
    # buffers again in .module() and move)
    constants = [f"constant {k}" for k in program.graph_signature.inputs_to_lifted_tensor_constants.values()]
    return named + constants


def _ancestors(node) -> set:
    """Every graph node that `node` is computed from."""
    seen, todo = set(), [node]
    while todo:
        for parent in todo.pop().all_input_nodes:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def metadata(record: RunRecord, run_dir: Path, tta: bool = False) -> dict:
    return {"classes": list(record.classes), "preprocessing": record.preprocessing.to_dict(),
            "backbone": record.backbone, "mode": record.mode, "run": run_dir.name, "tta": tta,
            # an export computes in fp32 (every runtime runs it); the run's own precision, for the record
            "precision": "fp32", "run_precision": run_precision(record),
            "input": "uint8 RGB images [N, 3, H, W], any size", "output": "class probabilities [N, C]"}


def example_and_shapes(wrapper: ExportedClassifier, min_side: int | None = None) -> tuple[torch.Tensor, dict]:
    """An example uint8 batch (of two, at an odd size) and its dynamic dimensions: batch, height, width
    (from `min_side`, default the crop size, to 16384 px)."""
    low = wrapper.crop_size if min_side is None else min_side
    from torch.export import Dim

    example = torch.randint(0, 256, (2, 3, wrapper.resize_size + 7, wrapper.resize_size + 3), dtype=torch.uint8,
                            device="cpu")
    dynamic = {"images": {0: Dim("batch", min=1, max=4096), 2: Dim("height", min=low, max=16384),
                          3: Dim("width", min=low, max=16384)}}
    return example, dynamic


def export_pt2(wrapper: ExportedClassifier, meta: dict, path: Path) -> list[str]:
    """A torch.export ExportedProgram (`torch.export.load(path).module()` runs it) of a PortableClassifier,
    metadata as an extra file; returns what ties it to the CPU (`device_bound`: empty when it runs on any
    device, as meta["device"] then says)."""
    assert isinstance(wrapper, PortableClassifier)  # export_run wraps the model for the format
    # any image from 2 px up, as predict takes it: the program checks its input shapes when it runs (ONNX
    # does not, so it keeps the crop size as the exporter's lower bound)
    example, dynamic = example_and_shapes(wrapper, min_side=2)
    program = torch.export.export(wrapper, (example,), dynamic_shapes=dynamic, strict=False)
    bound = device_bound(program)
    meta = {**meta, "device": "cpu" if bound else "any"}  # exported on the CPU (export_run loads it there)
    buf = io.BytesIO()  # then written atomically: a failed export never leaves half a model file
    torch.export.save(program, buf, extra_files={"tlbench.json": json.dumps(meta)})
    atomic_write_bytes(path, buf.getvalue())
    return bound


def export_torchscript(wrapper: ExportedClassifier, meta: dict, path: Path) -> list[str]:
    size = wrapper.crop_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but remains the portable format
        inner = torch.jit.trace(wrapper.model, torch.rand(1, 3, size, size, device="cpu"), check_trace=False)
        assert isinstance(inner, torch.jit.ScriptModule)  # tracing a module gives a TopLevelTracedModule
        wrapper.model = inner
        scripted = torch.jit.script(wrapper)
        buf = io.BytesIO()  # then written atomically: a failed export never leaves half a model file
        torch.jit.save(scripted, buf, _extra_files={"tlbench.json": json.dumps(meta)})
    atomic_write_bytes(path, buf.getvalue())
    return []


def onnx_modules():
    """(onnx, onnxruntime), or a clear message when the optional extra is missing."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError as err:
        raise ConfigError(
            f"ONNX export needs the onnx, onnxscript and onnxruntime packages ({err.name or err} is not "
            "installed). Install them with pip install 'tlbench[onnx]', or export with --format pt2 (the default) or --format torchscript."
        ) from None
    return onnx, onnxruntime


def export_onnx(wrapper: ExportedClassifier, meta: dict, path: Path) -> list[str]:
    onnx, _ = onnx_modules()
    example, dynamic = example_and_shapes(wrapper)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # kept in memory (no file given), then written atomically: a failed or stopped export never leaves
        # half a model file at `path`
        program = torch.onnx.export(wrapper, (example,), dynamo=True, dynamic_shapes=dynamic,
                                    input_names=["images"], output_names=["probabilities"],
                                    opset_version=ONNX_OPSET, external_data=False, verbose=False)
    assert program is not None  # the dynamo exporter returns its ONNXProgram
    model = program.model_proto
    onnx.helper.set_model_props(model, {"classes": json.dumps(meta["classes"]),
                                        "preprocessing": json.dumps(meta["preprocessing"]),
                                        "tlbench": json.dumps(meta)})
    atomic_write_bytes(path, model.SerializeToString())
    return []


def load_exported(path: str | os.PathLike, fmt: str | None = None, device: str = "cpu"):
    """A callable uint8 batch -> probabilities, and the class names, for any format (used by tests).

    `device`: where a pt2 program's model runs (the images may be anywhere: its preprocessing is on the host);
    a program tied to the CPU it was exported on is refused elsewhere, with the reason. The others load on
    the CPU."""
    path = Path(path)
    fmt = fmt or next((f for f, name in EXPORT_FILES.items() if Path(name).suffix == path.suffix), "torchscript")
    if fmt == "pt2":
        extra = {"tlbench.json": ""}
        program = torch.export.load(str(path), extra_files=extra)
        meta = json.loads(extra["tlbench.json"])
        exported_on = meta.get("device", "cpu")  # an export before this key was tied to its device
        if exported_on != "any" and torch.device(device).type != exported_on:
            raise ConfigError(
                f"{path} runs on the {exported_on.upper()} only, not on {device}: torch.export wrote the device "
                f"it was exported on into the program ({meta.get('backbone')} names it inside its forward, or an "
                "earlier tlbench exported it). Run it on the CPU, export the run again (tlbench export RUN), or "
                "export with --format onnx and run that with onnxruntime's CUDA provider."
            )
        module = program.module().to(device)
        return (lambda x: module(x)), meta["classes"]
    if fmt == "onnx":
        onnx, ort = onnx_modules()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        classes = json.loads(session.get_modelmeta().custom_metadata_map["classes"])
        return (lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])), classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the legacy format: torch.jit warns on every load
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    return (lambda x: module(x)), list(module.classes)


def export_run(run_dir: str | os.PathLike, fmt: str = "pt2", ctx: JobContext | None = None,
               output: str | os.PathLike | None = None, checkpoint: str = "best.pt", tta: bool | None = None) -> dict:
    """The export job: RUN/export/model.pt2 (torch.export), model.onnx or model.pt (TorchScript), checked
    against `tlbench predict`. `tta` (None: as the run recorded): the export averages each image's logits with
    its mirror image's, inside the model file."""
    if fmt not in EXPORT_FORMATS:

        raise choice_error("export format", fmt, EXPORT_FORMATS)
    if fmt == "onnx":
        onnx_modules()  # fail before loading anything
    run_dir = Path(run_dir)
    load_config(run_dir)  # a directory that is no run fails here, before the job starts
    if ctx is not None:
        ctx.emit(JobStarted("export", f"{run_dir.name} to {fmt}", str(run_dir)))
    model, record = load_run_model(run_dir, "cpu", checkpoint, precision="fp32")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    path = Path(output) if output else run_dir / "export" / EXPORT_FILES[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    tta = run_tta(record, tta)
    meta = metadata(record, run_dir, tta)
    kind = PortableClassifier if fmt == "pt2" else ExportedClassifier
    wrapper = kind(with_tta(model, tta), record.preprocessing, list(record.classes)).eval()
    if ctx is not None:
        ctx.log(f"exporting {checkpoint} of {run_dir.name} to {fmt}: {path}")
    bound = {"pt2": export_pt2, "onnx": export_onnx, "torchscript": export_torchscript}[fmt](wrapper, meta, path)
    if bound and ctx is not None:
        ctx.log(f"{record.backbone} names the CPU inside its forward ({', '.join(sorted(set(bound))[:3])}), so "
                "this pt2 program runs on the CPU only; for a GPU export with --format onnx and run it with "
                "onnxruntime's CUDA provider", "warning")
    run, classes = load_exported(path, fmt)
    check = check_against_predict(run, model, record, tta, run_dir)
    result = {"run_dir": str(run_dir), "format": fmt, "path": str(path), "bytes": path.stat().st_size,
              "classes": classes, **check}
    if ctx is not None:
        ctx.log(f"checked against tlbench predict on {check['checked_images']} {check['checked_on']}: "
                f"probabilities within {check['max_abs_diff']:.1e}",
                "info" if check["max_abs_diff"] <= PARITY_TOLERANCE else "warning")
        ctx.result.update(result)
    return result


PARITY_TOLERANCE = 1e-3  # probabilities; the export and predict differ by at most a grey level here and there
CHECK_IMAGES = 8


def check_images(record: RunRecord, run_dir: str | os.PathLike | None = None, n: int = CHECK_IMAGES) -> list[str]:
    """Up to n image files of the run, a few per class (sorted, so the same ones each time); none when the
    dataset is no longer there. Lists only: no scan, no decoding.

    The files come from the run's recorded split plan (split.json), as every later job on a run takes them: a
    file the user excluded (the Audit view's marks) is never opened again, by the export's check either. The
    folder listing, before, opened whatever sorted first in each class, a marked file included. A run from
    before plans were recorded lists the dataset's folders, without the files its exclude list names."""
    try:
        plan = load_plan(run_dir) if run_dir is not None else None
    except DatasetError:  # an unreadable plan: the check uses generated images rather than guess the run's files
        return []
    root = Path(record.dataset)
    if plan is not None:
        items = [(str(root / rel), record.classes[label]) for rel, label in plan["train"] + plan["val"]]
    else:
        try:
            _, found, _ = find_items(root)
        except (DatasetError, OSError):  # a dataset that moved only means the check uses other images
            return []
        excluded = read_exclude(exclude_file(root), root, missing_ok=True)
        items = [(path, cls) for path, cls, _ in found if str(Path(path).resolve()) not in excluded]
    by_class: dict[str, list[str]] = {}
    for path, cls in sorted(items):
        by_class.setdefault(cls, []).append(path)
    picks: list[str] = []
    for i in range(n):
        for paths in by_class.values():
            if i < len(paths) and len(picks) < n:
                picks.append(paths[i])
    return picks


def _synthetic_images(folder: Path, prep: Preprocessing) -> list[str]:
    """Two photo-like test images (smooth colour gradients and noise, two aspect ratios) when the dataset is
    gone: PNG files, so both sides decode exactly the same pixels."""
    rng = np.random.default_rng(0)
    size = prep.resize_size
    paths = []
    for i, (h, w) in enumerate([(size * 3 + 5, size * 2 + 1), (size + 3, size * 4 + 2)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=-1) * 255
        arr = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        path = folder / f"check-{i}.png"
        Image.fromarray(arr, "RGB").save(path)
        paths.append(str(path))
    return paths


def check_against_predict(run, model: RunModel, record: RunRecord, tta: bool | None = None,
                          run_dir: str | os.PathLike | None = None) -> dict:
    """The largest difference in probabilities between the export (`run`: uint8 batch -> probabilities) and
    `tlbench predict` with the run's model, on real images decoded in full (see `check_images`), or on
    generated ones when none of those can be read."""
    with tempfile.TemporaryDirectory(prefix="tlbench-export-check-") as tmp:
        diffs = _differences(run, model, record, check_images(record, run_dir), tta)
        source = "images of the run's dataset"
        if not diffs:
            diffs = _differences(run, model, record, _synthetic_images(Path(tmp), record.preprocessing), tta)
            source = "generated images (none of the run's dataset could be read)"
    return {"max_abs_diff": max(diffs), "checked_images": len(diffs), "checked_on": source}


def _differences(run, model: RunModel, record: RunRecord, paths: list[str], tta: bool | None = None) -> list[float]:
    classes = record.classes
    rows = predict_paths(model, record, paths, top_k=len(classes), device="cpu", tta=tta)
    diffs = []
    for path, row in zip(paths, rows):
        if "error" in row:
            continue
        want = torch.zeros(len(classes), device="cpu")
        for p in row["predictions"]:
            want[p["index"]] = p["prob"]
        pixels = torch.from_numpy(np.asarray(load_rgb(path)).copy()).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            got = run(pixels)[0].float()
        diffs.append(float((got - want).abs().max()))
    return diffs
