"""What an export writes, apart from its numbers (test_export.py): a pt2 program that moves to another device
with its module, or says plainly that it cannot; and an ONNX file that is whole or absent."""

import json

import pytest
import torch
from torch import nn

from engine.core.errors import ConfigError
from engine.core.records import Preprocessing
from engine.models.build import build_classifier
from engine.serve.export import ExportedClassifier, PortableClassifier, export_onnx, export_pt2, load_exported

PREP = Preprocessing(crop_size=32, resize_size=36)
CLASSES = ["a", "b", "c"]


def images(n: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 50, 41), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def weights_read_by(program, node) -> bool:
    """Whether `node` depends on a parameter or buffer of the program (is on the model's side of the graph)."""
    weights = set(program.graph_signature.inputs_to_parameters) | set(program.graph_signature.inputs_to_buffers)
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n.op == "placeholder" and n.name in weights:
            return True
        for parent in n.all_input_nodes:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return False


def test_a_pt2_program_runs_on_the_device_its_module_is_moved_to(tmp_path):
    """The trace device is not written into the model's part of the graph: moved to the meta device (as one
    would move it to CUDA), the program runs there on host images. Only the host-side preprocessing, which
    reads no weights, names a device."""
    model, _ = build_classifier("efficientnet_lite0", len(CLASSES), weights="random", seed=0)
    wrapper = PortableClassifier(model.eval(), PREP, CLASSES).eval()
    path = tmp_path / "model.pt2"
    assert export_pt2(wrapper, {"classes": CLASSES, "backbone": "efficientnet_lite0"}, path) == []

    extra = {"tlbench.json": ""}
    program = torch.export.load(str(path), extra_files=extra)
    assert json.loads(extra["tlbench.json"])["device"] == "any"
    named = [n for n in program.graph.nodes
             if "device" in n.kwargs or any(isinstance(a, torch.device) for a in n.args)]
    assert named and not [n.name for n in named if weights_read_by(program, n)]

    moved = program.module().to("meta")
    out = moved(images())
    assert out.device.type == "meta" and out.shape == (2, len(CLASSES))
    run, _ = load_exported(path, device="meta")
    assert run(images(1)).device.type == "meta"
    # on the CPU it is still the eager wrapper's computation
    with torch.no_grad():
        want = ExportedClassifier(model, PREP, CLASSES).eval()(images())
    assert torch.allclose(program.module()(images()), want, atol=1e-6)


class MakesACpuTensor(nn.Module):
    """A backbone whose forward creates a tensor on a named device, as some timm ViTs with RoPE do."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)) + torch.arange(3, device="cpu"))


def test_a_pt2_program_tied_to_the_cpu_is_refused_elsewhere_with_the_reason(tmp_path):
    wrapper = PortableClassifier(MakesACpuTensor().eval(), PREP, CLASSES).eval()
    path = tmp_path / "model.pt2"
    assert export_pt2(wrapper, {"classes": CLASSES, "backbone": "timm/some_rope_vit"}, path)
    extra = {"tlbench.json": ""}
    torch.export.load(str(path), extra_files=extra)
    assert json.loads(extra["tlbench.json"])["device"] == "cpu"
    with pytest.raises(ConfigError, match=r"runs on the CPU only, not on meta.*timm/some_rope_vit.*--format onnx"):
        load_exported(path, device="meta")
    run, classes = load_exported(path)  # where it was exported, it runs
    assert classes == CLASSES and run(images()).shape == (2, len(CLASSES))


def test_a_failed_onnx_export_leaves_no_file(tmp_path, monkeypatch):
    """The model is written whole or not at all: a failure after the graph was made (here: adding the
    metadata) leaves neither the target nor a temporary file."""
    onnx = pytest.importorskip("onnx")
    wrapper = ExportedClassifier(nn.Sequential(nn.Conv2d(3, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval(),
                                 PREP, CLASSES).eval()
    path = tmp_path / "model.onnx"

    def broken(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(onnx.helper, "set_model_props", broken)
    with pytest.raises(OSError, match="no space"):
        export_onnx(wrapper, {"classes": CLASSES, "preprocessing": PREP.to_dict()}, path)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    export_onnx(wrapper, {"classes": CLASSES, "preprocessing": PREP.to_dict()}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    assert json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["classes"]) == CLASSES


def test_the_exports_check_opens_only_the_runs_own_files_never_a_marked_one(tmp_path):
    """The check against predict reads real images of the run: from its recorded plan (split.json), so a file
    marked in the Audit view, even the first of its folder by name, is never opened (it was: the check listed
    the dataset's folders, issue 22). A run without a plan lists the folders minus the exclude list."""
    from helpers.data import make_dataset

    from engine.core.records import RunRecord
    from engine.data.exclude import write_exclude
    from engine.data.scan import scan_dataset
    from engine.data.splits import plan_record, plan_split, save_plan
    from engine.serve.export import check_images

    root = make_dataset(tmp_path / "colours", {"red": 4, "blue": 4})
    marked = [str(root / "blue" / "blue_0.png"), str(root / "red" / "red_0.png")]  # first of each class by name
    write_exclude(root, marked)
    info = scan_dataset(root)
    run = tmp_path / "run"
    run.mkdir()
    save_plan(run, plan_record(plan_split(info), info, 0.2, 0, "auto", "auto"))
    record = RunRecord.from_dict({"classes": info.classes, "backbone": "efficientnet_lite0", "dataset": str(root),
                                  "preprocessing": PREP.to_dict()})
    everything_else = {str(p) for p in root.rglob("*.png")} - set(marked)
    for run_dir in (run, None):  # the recorded plan; a run from before plans (the folders, minus the marks)
        picks = check_images(record, run_dir)
        assert len(picks) == 6 and set(picks) == everything_else, (run_dir, picks)
