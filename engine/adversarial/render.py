"""Small image helpers shared by attacks and dreams: total variation, PNG files, preview events, contact
sheets.

Tensors here are float images in [0, 1], shaped CHW or NCHW, the convention of engine.models.classifier.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from engine.core.events import ImageRendered
from engine.core.files import atomic_write_bytes


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per image, the sum of absolute differences between neighbouring pixels (tf.image.total_variation).

    NCHW in, a tensor of N values out. Being a sum, it scales with the pixel units: TV of a 0-255 image is
    255 times the TV of the same image in [0, 1].
    """
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().sum(dim=(-3, -2, -1))
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().sum(dim=(-3, -2, -1))
    return dh + dw


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """A CHW (or 1xCHW) float image in [0, 1] -> HxWx3 uint8, rounded, for PNGs and the workbench."""
    if x.dim() == 4:
        x = x[0]
    arr = x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr)


def amplified_perturbation(delta: torch.Tensor) -> torch.Tensor:
    """A perturbation made visible: grey is zero, the largest change reaches black or white."""
    peak = float(delta.detach().abs().max())
    if peak == 0:
        return torch.full_like(delta, 0.5)
    return (0.5 + delta.detach() * (0.5 / peak)).clamp(0, 1)


def png_bytes(x: torch.Tensor | np.ndarray) -> bytes:
    """A [0, 1] image tensor, or an HxWx3 uint8 array, as PNG bytes."""
    buf = io.BytesIO()
    arr = x if isinstance(x, np.ndarray) else to_uint8_hwc(x)
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | os.PathLike, x: torch.Tensor) -> Path:
    """Write a [0, 1] image as a PNG, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png_bytes(x))
    return path


def save_png_array(path: str | os.PathLike, arr: np.ndarray) -> Path:
    """Write an HxWx3 uint8 array as a PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png_bytes(arr))
    return path


CAPTION_PX = 26  # two lines of Pillow's default bitmap font under each tile


def contact_sheet(images: list[torch.Tensor], captions: list[str], tile: int = 160, pad: int = 4) -> np.ndarray:
    """The images side by side on a grid (as square as the count allows), each scaled to `tile` px with its
    caption (up to two lines) under it, on white: HxWx3 uint8."""
    if len(images) != len(captions) or not images:
        raise ValueError(f"contact_sheet needs one caption per image and at least one image: {len(images)} "
                         f"images, {len(captions)} captions")
    cols = max(1, int(np.ceil(np.sqrt(len(images)))))
    rows = int(np.ceil(len(images) / cols))
    cell_w, cell_h = tile + pad, tile + CAPTION_PX + pad
    sheet = Image.new("RGB", (cols * cell_w + pad, rows * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (x, caption) in enumerate(zip(images, captions, strict=True)):
        left, top = pad + (i % cols) * cell_w, pad + (i // cols) * cell_h
        thumb = Image.fromarray(to_uint8_hwc(x), "RGB").resize((tile, tile), Image.Resampling.BILINEAR)
        sheet.paste(thumb, (left, top))
        draw.multiline_text((left + 1, top + tile + 1), caption, fill="black", font=font, spacing=2)
    return np.asarray(sheet).copy()


def rendered(kind: str, step: int, x: torch.Tensor, path: str | os.PathLike | None = None,
             values: dict[str, float] | None = None) -> ImageRendered:
    """An ImageRendered event carrying the pixels (HxWx3 uint8 bytes), so a UI can draw it without disk."""
    return rendered_array(kind, step, to_uint8_hwc(x), path, values)


def rendered_array(kind: str, step: int, arr: np.ndarray, path: str | os.PathLike | None = None,
                   values: dict[str, float] | None = None) -> ImageRendered:
    """The same for an HxWx3 uint8 array (a contact sheet)."""
    arr = np.ascontiguousarray(arr)
    return ImageRendered(kind, step, str(path) if path is not None else None, int(arr.shape[1]),
                         int(arr.shape[0]), arr.tobytes(), dict(values or {}))
