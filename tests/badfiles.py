"""Generators for the files real datasets contain: broken, odd or hostile."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(size: int = 64, colour=(200, 60, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def write_truncated_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_text_as_jpg(path: Path) -> Path:
    path.write_text("this is not an image, it is a note someone saved with the wrong name\n")
    return path


def write_png_named_jpg(path: Path, colour=(60, 60, 200)) -> Path:
    Image.new("RGB", (48, 48), colour).save(path, format="PNG")
    return path


def write_decompression_bomb(path: Path, side: int = 100_000) -> Path:
    """A valid PNG header declaring side x side pixels (10 gigapixels) with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def write_tiny(path: Path) -> Path:
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path)
    return path


def write_16bit_png(path: Path, value: int = 40000) -> Path:
    arr = np.full((32, 32), value, dtype=np.uint16)
    Image.fromarray(arr).save(path)
    return path


def write_cmyk_jpeg(path: Path) -> Path:
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(path, "JPEG")  # pure red in CMYK
    return path


def write_palette_transparent_png(path: Path) -> Path:
    img = Image.new("P", (40, 40), 0)
    img.putpalette([255, 0, 0] + [0, 255, 0] * 255)
    img.paste(1, (0, 0, 20, 40))
    img.save(path, transparency=0)  # left half green; the right half (index 0, red) is fully transparent
    return path


def write_rgba_png(path: Path) -> Path:
    Image.new("RGBA", (40, 40), (0, 0, 255, 0)).save(path)  # fully transparent blue
    return path


def write_grayscale(path: Path) -> Path:
    Image.new("L", (40, 40), 90).save(path)
    return path


def write_exif_rotated_jpeg(path: Path) -> Path:
    """Stored 60 wide x 30 high, with EXIF orientation 6 (rotate 90° clockwise to display: 30 x 60)."""
    img = Image.new("RGB", (60, 30), (200, 200, 200))
    img.paste((255, 0, 0), (0, 0, 10, 30))  # a red band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return path


class PicklePayload:
    """Unpickling this runs code that writes `marker`: a checkpoint carrying it must be refused."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))
