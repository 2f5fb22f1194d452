"""The maco recipe: the phase-only image (its magnitude never moves), the batched crops (one forward for all
views), the ensemble objective, and the done-when property: Lite0's default dreams are recognised by Lite2."""

import numpy as np
import pytest
import torch
from torch import nn

from engine.adversarial.dreams import COLOR_CORRELATION, dream, judge, objective
from engine.adversarial.maco import PhaseImage, batched_crops, crop_boxes, natural_magnitude

SIZE = 32


def decorrelated_spectrum(x: torch.Tensor) -> torch.Tensor:
    """|FFT| of the image before its sigmoid, back in the decorrelated colour space maco optimises in."""
    z = torch.logit(x.detach().double().clamp(1e-9, 1 - 1e-9))
    inverse = torch.linalg.inv(torch.tensor(COLOR_CORRELATION, dtype=torch.float64))
    return torch.fft.rfft2(torch.einsum("dc,nchw->ndhw", inverse, z), norm="ortho").abs()[0]


def test_phase_image_optimises_only_the_phase_and_keeps_the_natural_magnitude():
    img = PhaseImage(SIZE, torch.Generator().manual_seed(0), COLOR_CORRELATION)
    assert [name for name, _ in img.named_parameters()] == ["phase"]
    magnitude, phase0 = img.magnitude.clone(), img.phase.detach().clone()
    opt = torch.optim.Adam(img.parameters(), lr=0.1)
    x0 = img().detach()
    before = decorrelated_spectrum(x0)
    for _ in range(3):  # push the image toward red: a real objective that moves it
        loss = -img()[:, 0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = decorrelated_spectrum(img())
    assert torch.equal(img.magnitude, magnitude) and not torch.allclose(img.phase, phase0)
    # Away from the bins an inverse real FFT forces to be real (row/column 0 and the Nyquist ones), the image's
    # spectrum is the natural magnitude up to one factor (the standardisation): the magnitude has not moved…
    inner = (slice(None), slice(1, SIZE // 2), slice(1, SIZE // 2))
    for spec in (before, after):
        ratio = spec[inner] / magnitude[0].double()[inner]
        assert float(ratio.std() / ratio.mean()) < 1e-3
    assert float((img().detach() - x0).abs().max()) > 0.05  # … while the image did change
    with torch.no_grad():
        y = img()
    assert y.shape == (1, 3, SIZE, SIZE) and 0 <= float(y.min()) and float(y.max()) <= 1


def test_natural_magnitude_is_resampled_to_any_size_and_falls_with_frequency():
    for size in (SIZE, 33, 224):
        m = natural_magnitude(size)
        assert m.shape == (3, size, size // 2 + 1) and m.dtype == torch.float32 and bool((m > 0).all())
        assert float(m[0, 1, 1]) > float(m[0, size // 4, size // 4]) > float(m[0, size // 2, size // 2 - 1])


def test_batched_crops_are_one_batch_of_different_views_of_the_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, SIZE, SIZE)
    crops = batched_crops(x, 6, 24, g, noise=0.0)
    assert crops.shape == (6, 3, 24, 24)
    assert len({tuple(c.flatten()[:20].tolist()) for c in crops}) == 6  # every crop its own view
    whole = batched_crops(x, 2, SIZE, g, noise=0.0, scale=(1.0, 1.0))  # a full-size box is the image itself
    assert torch.allclose(whole, x.expand(2, -1, -1, -1), atol=1e-5)
    theta = crop_boxes(1000, torch.Generator().manual_seed(1))
    side, shift = theta[:, 0, 0], theta[:, :, 2].abs()
    assert float(side.min()) >= 0.5 and float(side.max()) <= 1.0 and bool((shift <= 1 - side[:, None] + 1e-6).all())
    noisy = batched_crops(x, 2, SIZE, g, noise=0.1, scale=(1.0, 1.0), noise_generator=torch.Generator())
    assert 0.05 < float((noisy - x).std()) < 0.15


class Recorder(nn.Module):
    """A tiny differentiable 'network' that keeps the batches it was shown."""

    def __init__(self, classes: int = 5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))
        self.register_buffer("anchor", torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach())
        return self.net(x)


def test_maco_sees_all_its_crops_in_one_forward_and_an_ensemble_sees_the_same_views():
    a, b = Recorder(seed=0), Recorder(seed=1)
    result = dream(a, 2, recipe="maco", steps=3, size=SIZE, crops=5, ensemble=[(b, 4)])
    assert len(a.seen) == len(b.seen) == 3  # one forward per step and network
    assert all(v.shape == (5, 3, SIZE, SIZE) for v in a.seen)  # …of all 5 crops at once
    assert all(torch.equal(u, v) for u, v in zip(a.seen, b.seen, strict=True))  # the same views for both
    assert result.steps_done == 3 and len(result.probs) == 3 and result.image.shape == (1, 3, SIZE, SIZE)


def test_the_ensemble_objective_pulls_each_network_toward_its_own_index_of_the_class():
    torch.manual_seed(0)
    l1, l2 = torch.randn(4, 5, requires_grad=True), torch.randn(4, 7, requires_grad=True)
    x = torch.rand(1, 3, 8, 8)
    loss = objective([l1, l2], [1, 6], x, "maco", 0.0, 0.0)
    assert loss.item() == pytest.approx(-(l1[:, 1].mean() + l2[:, 6].mean()).item())
    loss.backward()
    assert bool((l1.grad[:, 1] < 0).all()) and bool((l2.grad[:, 6] < 0).all())  # both pulled up
    assert float(l1.grad[:, [0, 2, 3, 4]].abs().sum()) == 0 and float(l2.grad[:, :6].abs().sum()) == 0
    # the image terms are counted once, not once per network
    with torch.no_grad():
        both = objective([l1, l2], [1, 6], x, "maco", 1.0, 0.0)
        image_terms = objective([l1], [1], x, "maco", 1.0, 0.0) - objective([l1], [1], x, "maco", 0.0, 0.0)
    assert both.item() == pytest.approx(loss.item() + image_terms.item())


def test_default_dreams_of_lite0_are_ranked_first_by_lite2():
    """The done-when test: the default recipe (maco) on two classes at reduced size (96 px, 24 steps of 4
    crops; ~10 s of optimisation on 2 quiet cores), and a second network (Lite2) ranks each dream's class
    first. (The lesson recipe, at this size and budget, is ranked far down by Lite2.)"""
    from engine.adversarial.common import fast_copy
    from engine.adversarial.target import load_target_model

    lite0 = load_target_model(backbone="efficientnet_lite0")
    lite2 = load_target_model(backbone="efficientnet_lite2")
    model = fast_copy(lite0, torch.device("cpu"), 96)
    for target in (963, 1):  # pizza, goldfish
        result = dream(model, target, size=96, steps=24, crops=4, seed=0)
        seen = judge(lite2.model, result.image, lite2.classes, target)
        assert seen["rank"] == 1, (lite2.classes[target], seen)
    assert np.isfinite(result.probs).all()
