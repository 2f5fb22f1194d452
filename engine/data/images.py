"""Reading one image safely: integrity checks, fast reduced-size JPEG decoding, conversion to RGB.

Nothing here ever modifies, moves or deletes a file.
"""

from __future__ import annotations

import os
import re
import stat
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

# Refuse images that declare more pixels than this: a decompression bomb would exhaust memory.
MAX_PIXELS = 89_478_485  # PIL's default warning threshold (~ 9459 x 9459)
MIN_SIDE = 8  # smaller images carry too little to classify (the demo digits are exactly 8 x 8)

# A truncated file must fail loudly, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Treat PIL's decompression-bomb warning as an error, process-wide (thumbnails included). Set once here:
# warnings.catch_warnings() is not thread-safe and the scan decodes on several threads.
warnings.simplefilter("error", Image.DecompressionBombWarning)


class ImageProblem(Exception):
    """An image that cannot be used, with a reason a person can act on."""


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _open(path: str | os.PathLike) -> Image.Image:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        what = "broken symbolic link (its target is missing)" if os.path.islink(path) else "file not found"
        raise ImageProblem(what) from None
    except OSError as err:
        raise ImageProblem(f"cannot read file ({err.strerror or err})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageProblem("a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        # a FIFO or device named *.jpg would block or stream forever
        raise ImageProblem("not a regular file (a pipe, socket or device)")
    if st.st_size == 0:
        raise ImageProblem("empty file (0 bytes)")
    try:
        img = Image.open(path)
    except PermissionError:
        raise ImageProblem("permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        m = re.search(r"\((\d+) pixels\)", str(err))
        declared = f"declares {int(m.group(1)):,} pixels" if m else str(err)
        raise ImageProblem(f"decompression bomb refused: {declared} (limit {MAX_PIXELS:,})") from None
    except UnidentifiedImageError:
        with open(path, "rb") as f:
            head = f.read(512)
        kind = "text" if head and all(32 <= b < 127 or b in b"\r\n\t" for b in head) else "unknown data"
        raise ImageProblem(f"not an image: content is {kind}, not JPEG/PNG/…") from None
    except OSError as err:
        raise ImageProblem(f"cannot open ({err})") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise ImageProblem(f"decompression bomb refused: declares {w}x{h} = {w * h:,} pixels (limit {MAX_PIXELS:,})")
    return img


def check_image(path: str | os.PathLike, min_side: int = MIN_SIDE) -> tuple[int, int, str]:
    """Decode the image (reduced size where the format allows) and return (width, height, format).

    Raises ImageProblem with the reason when it cannot be used.
    """
    img = _open(path)
    try:
        w, h = img.size
        fmt = img.format or "?"
        if min(w, h) < min_side:
            raise ImageProblem(f"too small ({w}x{h} px; the minimum is {min_side} px on each side)")
        if fmt == "JPEG":
            img.draft("RGB", (max(1, w // 8), max(1, h // 8)))  # decode at 1/8 scale: fast, still checks data
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageProblem(f"truncated or corrupt {fmt} data ({err})") from None
        return w, h, fmt
    finally:
        img.close()


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB: 16-bit scaled (not clipped), alpha composited on white, CMYK/palette converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def load_rgb(path: str | os.PathLike, min_size: int | None = None) -> Image.Image:
    """Open as RGB with EXIF orientation applied.

    With `min_size`, a JPEG much larger than needed is decoded at reduced size (PIL draft mode: the
    decoder skips most of the work), keeping its shorter side >= min_size.
    """
    src = _open(path)
    try:
        if min_size and src.format == "JPEG":
            w, h = src.size
            scale = min(w, h) / float(min_size)
            if scale >= 2:
                src.draft("RGB", (int(w / scale) + 1, int(h / scale) + 1))
        try:
            src.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageProblem(f"truncated or corrupt {src.format} data ({err})") from None
        img = ImageOps.exif_transpose(src)
        if img is None or img is src:
            img = src.copy()
        return _to_rgb(img)
    finally:
        src.close()  # the file handle; the returned image is a separate copy


def image_identity(path: str | os.PathLike) -> str:
    """What identifies a file's content cheaply: path, size and modification time."""
    st = os.stat(path)
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
