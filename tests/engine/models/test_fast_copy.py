"""inference_copy: one copy of the model, folded when the fold is checked equal, and the caller's model left
exactly as it was, whatever mix of modes it was in."""

from __future__ import annotations

import torch
from torch import nn

import engine.models.fast
from engine.models.build import build_classifier
from engine.models.fast import inference_copy


def lite0() -> nn.Module:
    """Random Lite0 with BatchNorm statistics and affine values of its own: a fresh network's features are
    close to zero, and the fold's check would pass whatever the fold did."""
    model = build_classifier("efficientnet_lite0", 3, "random", seed=0)[0]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                for t, low, high in ((m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2), (m.running_mean, -0.2, 0.2),
                                     (m.running_var, 0.5, 2.0)):
                    t.copy_(torch.rand(t.shape, generator=g) * (high - low) + low)
    return model


def modes(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def test_a_model_in_mixed_modes_gets_each_module_s_mode_back_and_no_value_changes():
    model = lite0().train()
    for stage in list(model.backbone.children())[:2]:  # frozen stages, as a partial fine-tune keeps them
        stage.eval()
    before_modes = modes(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm's running stats included
    fast = inference_copy(model, torch.device("cpu"), 32)
    assert modes(model) == before_modes and not all(before_modes.values()) and any(before_modes.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.backbone.modules())  # folded
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(fast.parameters(), model.parameters()))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want = model.eval().features(x)
        assert want.abs().max() > 0.1 and torch.allclose(fast.features(x), want, atol=1e-4)


def test_a_fold_that_changes_the_outputs_falls_back_to_an_unfolded_copy(monkeypatch):
    model = lite0().eval()
    fold = engine.models.fast.fold_batchnorm

    def wrong_fold(backbone: nn.Module) -> int:
        folded = fold(backbone)
        with torch.no_grad():
            [m for m in backbone.modules() if isinstance(m, nn.Conv2d)][-1].bias.add_(1.0)
        return folded

    monkeypatch.setattr(engine.models.fast, "fold_batchnorm", wrong_fold)
    fast = inference_copy(model, torch.device("cpu"), 32)
    assert any(isinstance(m, nn.BatchNorm2d) for m in fast.backbone.modules())  # the unfolded copy
    assert fast.backbone is not model.backbone
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(fast.features(x), model.features(x), atol=1e-5)  # channels_last: not bit-equal


def test_a_tensor_the_model_caches_during_the_check_can_still_be_trained_through():
    """A module may keep a tensor its first forward made (a lazily built rotary table): made by the check on
    the caller's model, it must be an ordinary tensor, or a later training step cannot save it for backward."""
    model = lite0().train()
    cache: dict[str, torch.Tensor] = {}
    model.backbone.register_forward_hook(lambda module, args, out: cache.setdefault("first", out))
    inference_copy(model, torch.device("cpu"), 32)
    assert "first" in cache  # the check ran the caller's model
    weight = model.head.weight
    (model(torch.rand(2, 3, 32, 32)) * cache["first"].mean()).sum().backward()
    assert weight.grad is not None
