"""The device checks themselves: they must flag what lands on the wrong device on a GPU box or on MPS."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from device_discipline import ENGINE_DIR, DeviceDiscipline, meta_model


def engine_function(src: str, name: str):
    """A function whose code reports a file inside engine/, as engine code would."""
    scope: dict = {"torch": torch}
    exec(compile(src, str(Path(ENGINE_DIR) / "_discipline_probe.py"), "exec"), scope)
    return scope[name]


def test_flags_a_factory_without_device_in_engine_code():
    fn = engine_function("def probe(model):\n    return torch.rand(2, 3)\n", "probe")
    with DeviceDiscipline() as mode:
        fn(None)
    assert len(mode.violations) == 1 and "torch.rand" in mode.violations[0]
    assert "_discipline_probe.py:2" in mode.violations[0]
    with pytest.raises(AssertionError, match="without device"):
        mode.check()


def test_accepts_a_device_taken_from_the_model_and_inherited_devices():
    fn = engine_function(
        "def ok(x):\n"
        "    a = torch.rand(2, 3, device=x.device)\n"
        "    b = torch.zeros_like(x)\n"
        "    c = x.new_zeros(4)\n"
        "    return torch.tensor([1, 2], device='cpu'), a, b, c\n", "ok")
    with DeviceDiscipline() as mode:
        fn(torch.ones(2))
    mode.check()


def test_flags_float64_made_by_engine_code():
    fn = engine_function("def acc(x):\n    return x.double().sum()\n", "acc")
    with DeviceDiscipline() as mode:
        fn(torch.ones(3))
    assert any("float64" in v for v in mode.violations)


def test_code_outside_engine_is_not_policed():
    with DeviceDiscipline() as mode:
        torch.rand(3).double()
    mode.check()


def test_meta_models_take_no_memory_and_refuse_cpu_tensors():
    model = meta_model(lambda: torch.nn.Linear(4, 2))
    assert model.weight.device.type == "meta"
    with pytest.raises((RuntimeError, NotImplementedError)):
        model(torch.rand(1, 4)).sum().item()


def test_a_dataloader_iterated_by_engine_code_passes_but_engine_factories_do_not():
    """torch draws a DataLoader's base seed with torch.empty(()) on the line that iterates it: that is torch's
    bookkeeping, not engine code creating a tensor on the default device."""
    fn = engine_function("def probe(loader):\n    for _ in loader:\n        pass\n"
                         "    return torch.rand(2), torch.ones(2, device='cpu').double()\n", "probe")
    loader = torch.utils.data.DataLoader(list(range(4)), batch_size=2)
    with DeviceDiscipline() as mode:
        fn(loader)
    assert len(mode.violations) == 2, mode.violations
    assert "_discipline_probe.py:4" in mode.violations[0] and "torch.rand" in mode.violations[0]
    assert "float64" in mode.violations[1]
