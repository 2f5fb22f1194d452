"""The "maco" dream recipe's pieces (Fel et al., NeurIPS 2023, "Unlocking feature visualization for deeper
networks with magnitude constrained optimization"): an image whose Fourier magnitude is fixed to that of
natural photos, so only the phase is optimised; many random crops of it per step, in one batch; and an
objective over one model or an ensemble.

Why it transfers: an image made by following one network's gradient in pixel space (the lesson recipe) grows
high-frequency patterns that only that network reads. With the magnitude pinned to a photo's, no frequency can
grow out of proportion; the optimisation can only move edges and shapes around (the phase is where a picture's
structure lives). Averaging the gradient over many crops and scales (expectation over transformations) keeps
only features that survive them, and an ensemble keeps those several networks agree on.

natural_spectrum.npy (beside this file, shipped as package data) is the mean magnitude of 244 CC0 / public
domain photos (skimage.data's astronaut, chelsea, coffee, rocket and the 240 Dogs-vs-Cats photos of the
project's shared development data), each resized and centre-cropped to 224 px, in Lucid's decorrelated colour
space, real 2-D FFT with norm "ortho", averaged, divided by its mean, float16, shape (3, 224, 113).
bench/dream_spectrum.py makes it; nothing is downloaded at run time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.core.errors import ConfigError

SPECTRUM_FILE = Path(__file__).with_name("natural_spectrum.npy")
CROP_SCALE = (0.5, 1.0)  # side of a crop as a fraction of the image side
CROP_NOISE = 0.04  # std of the Gaussian noise added to each crop, in [0, 1] pixel units (MaCo: 0.08 on [-1, 1])


@lru_cache(maxsize=1)
def _spectrum() -> torch.Tensor:
    try:
        return torch.from_numpy(np.load(SPECTRUM_FILE).astype(np.float32))
    except OSError as err:
        raise ConfigError(f"The natural-image spectrum {SPECTRUM_FILE} is missing ({err}): the maco recipe needs "
                          "it. Reinstall tlbench, or make it with bench/dream_spectrum.py.") from None


def natural_magnitude(size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The photos' mean Fourier magnitude for a size x size image: (3, size, size // 2 + 1), float32.

    The stored 224 px spectrum is resampled on the frequency axes (rows taken zero-frequency-centred so the
    interpolation runs across the continuous spectrum), then put back in rfft order. The overall scale does
    not matter: the image is standardised after the inverse FFT.
    """
    stored = _spectrum()
    if stored.shape[-2:] != (size, size // 2 + 1):
        centred = torch.fft.fftshift(stored, dim=-2)[None]
        centred = F.interpolate(centred, size=(size, size // 2 + 1), mode="bilinear", align_corners=True)[0]
        stored = torch.fft.ifftshift(centred, dim=-2)
    return stored.to(device=device, copy=True)  # the cached spectrum stays untouched by its users


class PhaseImage(nn.Module):
    """MaCo's image: a fixed natural magnitude times exp(i * phase) in decorrelated colour space, inverse FFT,
    colours recorrelated (Lucid's matrix), standardised, sigmoid to [0, 1]. Only `phase` is a parameter.

    The random phase is drawn on the CPU from `generator` and moved to `device`: a seed gives the same start
    on every device.
    """

    magnitude: torch.Tensor  # buffers
    color: torch.Tensor

    def __init__(self, size: int, generator: torch.Generator, color: np.ndarray,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.size = size
        self.register_buffer("magnitude", natural_magnitude(size, device)[None])
        phase = torch.randn(1, 3, size, size // 2 + 1, generator=generator, device="cpu")
        self.phase = nn.Parameter(phase.to(device))
        self.register_buffer("color", torch.tensor(color, dtype=torch.float32, device=device))

    def forward(self) -> torch.Tensor:
        spectrum = torch.complex(self.magnitude * torch.cos(self.phase), self.magnitude * torch.sin(self.phase))
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        image = torch.einsum("nchw,dc->ndhw", image, self.color)
        image = (image - image.mean()) / (image.std() + 1e-4)
        return torch.sigmoid(image)


def crop_boxes(n: int, generator: torch.Generator, scale: tuple[float, float] = CROP_SCALE) -> torch.Tensor:
    """n random square boxes as affine_grid matrices (n x 2 x 3, float32, on the CPU: host-side draws from
    the CPU generator, so a seed gives the same crops everywhere). Side s of the image side (uniform in
    `scale`), centre anywhere that keeps the box inside the image."""
    u = torch.rand(n, 3, generator=generator, device="cpu")
    side = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    cx, cy = (2 * u[:, 1] - 1) * (1 - side), (2 * u[:, 2] - 1) * (1 - side)
    theta = torch.zeros(n, 2, 3, device="cpu")
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = side, side, cx, cy
    return theta


def batched_crops(x: torch.Tensor, n: int, out_size: int, generator: torch.Generator,
                  noise: float = CROP_NOISE, noise_generator: torch.Generator | None = None,
                  scale: tuple[float, float] = CROP_SCALE) -> torch.Tensor:
    """n random crops of the 1x3xHxW image x, each resized to out_size (one bilinear grid_sample for all),
    plus Gaussian noise, as one n x 3 x out_size x out_size batch on x's device: one forward for all views.
    `noise_generator` is a generator on x's device (the noise is drawn there: a whole batch of it would be
    too much to copy every step)."""
    theta = crop_boxes(n, generator, scale).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [n, x.shape[1], out_size, out_size], align_corners=False)
    crops = F.grid_sample(x.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection",
                          align_corners=False)
    if noise:
        crops = crops + noise * torch.randn(crops.shape, generator=noise_generator, device=x.device,
                                            dtype=x.dtype)
    return crops
