"""A decoded-image cache for fine-tuning: each training image decoded and resized once, kept as uint8 pixels
in a memory-mapped file, so later epochs (and later runs) only crop, flip and augment.

On a GPU a small backbone takes thousands of images per second while JPEG decoding feeds a few hundred per
core: after the first epoch the decoder, not the model, set the pace. The store holds every image at the
run's working resolution, the eval preprocessing's resize (shorter side `resize_size`, a little above the
crop size, antialiased exactly as engine.data.loaders.resize_center_crop resizes), the longer side center-
cropped to at most MAX_ASPECT times the shorter. A center crop of a stored image is therefore the very eval
input, and random resized crops are taken from a picture with enough pixels for the crop size.

<cache>/decoded/<hash>/ holds `pixels.u8` (every image's HWC bytes, one after another: read back as a CHW
tensor in channels_last layout, the layout torch's fast uint8 resize kernels take) and `index.pt`
(offsets, shapes, per-file errors, the key). The hash covers the key: the files (path, size, mtime), the
preprocessing, torch/Pillow versions and this code. It is built in a temporary folder beside it and renamed
into place in one step, so a reader (another DataLoader worker, another torchrun rank, another run) sees a
whole store or none. Pruned like the feature cache: unused for 30 days, then the least recently used beyond
TLBENCH_DECODED_CACHE_MB (default 10240). A store being read is never pruned: each reader holds a shared lock
on its `index.pt` (`Lease`), and `prune` deletes only a store it can lock exclusively.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import PIL
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from engine.core.paths import cache_dir
from engine.core.records import Preprocessing
from engine.data.images import image_identity, load_rgb
from engine.data.loaders import data_loader

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stores there are pruned by age and size alone
    fcntl = None

STORE_VERSION = 1
MAX_ASPECT = 2.0  # a panorama keeps its middle 2:1: random crops never need more
MAX_AGE_DAYS = 30
DEFAULT_MAX_MB = 10240
CODE_FILES = ("data/decoded.py", "data/loaders.py", "data/images.py")


def working_shape(h: int, w: int, resize_size: int) -> tuple[int, int, int, int]:
    """(resized h, w, then stored h, w): resize_center_crop's resize, then the longer side capped."""
    short = min(h, w)
    rh, rw = resize_size * h // short, resize_size * w // short
    cap = int(resize_size * MAX_ASPECT)
    return rh, rw, min(rh, cap), min(rw, cap)


def decode_resized(path: str, prep: Preprocessing) -> torch.Tensor:
    """One file -> uint8 [3, h, w] at the working resolution (raises for an unusable file)."""
    x = torch.from_numpy(np.asarray(load_rgb(path)).copy()).permute(2, 0, 1).unsqueeze(0)
    rh, rw, sh, sw = working_shape(x.shape[-2], x.shape[-1], prep.resize_size)
    x = F.interpolate(x, size=(rh, rw), mode=prep.resize_mode, align_corners=False, antialias=True)
    top, left = (rh - sh) // 2, (rw - sw) // 2
    return x[0, :, top:top + sh, left:left + sw].contiguous()


def code_hash() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for name in CODE_FILES:
        h.update(name.encode())
        try:
            h.update((root / name).read_bytes())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()[:16]


def store_key(paths: list[str], prep: Preprocessing) -> dict:
    """What the stored pixels depend on (the files by path, size and mtime, hashed)."""
    files = hashlib.sha256("\n".join(image_identity(p) for p in paths).encode()).hexdigest()
    return {"format": STORE_VERSION, "files": files, "count": len(paths), "resize_size": prep.resize_size,
            "resize_mode": prep.resize_mode, "max_aspect": MAX_ASPECT, "torch": torch.__version__.split("+")[0],
            "pillow": PIL.__version__, "code": code_hash()}


def store_dir(key: dict, root: Path | None = None) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return (root or cache_dir() / "decoded") / digest


def estimate_bytes(paths: list[str], prep: Preprocessing) -> int:
    """The store's size from the files' headers (no decoding; a file that cannot be opened counts nothing)."""
    total = 0
    for p in paths:
        try:
            with Image.open(p) as img:
                w, h = img.size
        except Exception:  # noqa: BLE001 - an unreadable file is listed when it is decoded, not here
            continue
        _, _, sh, sw = working_shape(h, w, prep.resize_size)
        total += 3 * sh * sw
    return total


class _Decode(Dataset):
    def __init__(self, paths: list[str], prep: Preprocessing):
        self.paths, self.prep = paths, prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return decode_resized(self.paths[i], self.prep), i, ""
        except Exception as err:  # noqa: BLE001 - any decoder failure is a property of the file
            return torch.zeros(3, 0, 0, dtype=torch.uint8, device="cpu"), i, f"cannot decode ({err})"


def build_store(paths: list[str], prep: Preprocessing, workers: int = 0, root: Path | None = None,
                log: Callable[[str], None] | None = None) -> Path:
    """Decode and resize every file once into a new store (or find the one already there); returns its folder.

    Written into a temporary folder, then renamed into place: a concurrent builder's identical store wins
    the race harmlessly, and no reader ever sees half a store."""
    key = store_key(paths, prep)
    final = store_dir(key, root)
    if (final / "index.pt").exists():
        return final
    if log is not None:
        log(f"decoded-image cache: decoding {len(paths)} images once at {prep.resize_size} px (shorter side), "
            f"about {estimate_bytes(paths, prep) / 1e6:.0f} MB in {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        offsets = torch.zeros(len(paths), dtype=torch.int64, device="cpu")
        shapes = torch.zeros(len(paths), 2, dtype=torch.int64, device="cpu")
        errors: dict[int, str] = {}
        # its own generator: a DataLoader otherwise draws its seed from the global RNG, and a run that built
        # the store would then train differently from one that found it
        loader = data_loader(_Decode(paths, prep), batch_size=None, num_workers=workers,
                             prefetch_factor=8 if workers else None, generator=torch.Generator().manual_seed(0))
        pos = 0
        with open(tmp / "pixels.u8", "wb") as out:
            for x, i, err in loader:
                if err:
                    errors[i] = err
                offsets[i] = pos
                shapes[i, 0], shapes[i, 1] = x.shape[1], x.shape[2]
                out.write(x.permute(1, 2, 0).contiguous().numpy().tobytes())
                pos += x.numel()
            out.flush()
            os.fsync(out.fileno())
        torch.save({"key": key, "paths": list(paths), "offsets": offsets, "shapes": shapes, "errors": errors,
                    "bytes": pos}, tmp / "index.pt")
        try:
            os.rename(tmp, final)  # atomic; fails when another builder got there first
        except OSError:
            if not (final / "index.pt").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(final.parent, keep=final)
    return final


def open_store(paths: list[str], prep: Preprocessing, workers: int = 0, transform=None,
               log: Callable[[str], None] | None = None) -> DecodedFiles:
    """`build_store` (usually a hit) and the DecodedFiles reading it; built again when another process pruned
    it in between (it was the least recently used over the size cap)."""
    try:
        return DecodedFiles(build_store(paths, prep, workers, log=log), prep, transform)
    except FileNotFoundError:
        return DecodedFiles(build_store(paths, prep, workers, log=log), prep, transform)


class DecodedFiles(Dataset):
    """ImageFiles over a decoded store: (uint8 tensor after `transform`, index, error).

    `transform` takes the stored uint8 CHW tensor (None: the eval center crop, the very pixels of
    engine.data.loaders.eval_transform). The memory map is opened lazily in each process (DataLoader workers
    each open their own), read-only."""

    def __init__(self, folder: Path, prep: Preprocessing, transform=None):
        self.lease = Lease(folder)  # first: from here on no prune deletes the store (raises if one just did)
        index = torch.load(folder / "index.pt", map_location="cpu", weights_only=True)
        self.folder, self.prep, self.transform = folder, prep, transform
        self.paths: list[str] = index["paths"]
        self.offsets, self.shapes, self.errors = index["offsets"], index["shapes"], index["errors"]
        self._pixels: np.memmap | None = None
        self._pid = -1
        try:
            os.utime(folder / "index.pt")  # last use, for the least-recently-used pruning
        except OSError:
            pass

    def __len__(self) -> int:
        return len(self.paths)

    def pixels(self, i: int) -> torch.Tensor:
        if self._pixels is None or self._pid != os.getpid():
            self._pixels = np.memmap(self.folder / "pixels.u8", dtype=np.uint8, mode="r")
            self._pid = os.getpid()
        h, w = int(self.shapes[i, 0]), int(self.shapes[i, 1])
        start = int(self.offsets[i])
        # HWC bytes seen as CHW: a channels_last image, no copy
        return torch.from_numpy(np.array(self._pixels[start:start + 3 * h * w])).view(h, w, 3).permute(2, 0, 1)

    def __getitem__(self, i: int):
        size = self.prep.crop_size
        if i in self.errors:
            return torch.zeros(3, size, size, dtype=torch.uint8, device="cpu"), i, self.errors[i]
        x = self.pixels(i)
        if self.transform is not None:
            return self.transform(x), i, ""
        top, left = _offset(x.shape[1] - size), _offset(x.shape[2] - size)
        return x[:, top:top + size, left:left + size].contiguous(), i, ""

    def close(self) -> None:
        """Let the store be pruned again (garbage collection does it too)."""
        self.lease.release()

    def __getstate__(self):  # the memory map is reopened in each worker, never pickled; the lease stays here
        return {**self.__dict__, "_pixels": None, "_pid": -1, "lease": Lease(None)}


def _offset(extra: int) -> int:
    half = extra // 2  # torchvision's center-crop offset, as engine.data.loaders._center_offset
    return half + (extra % 2) * (half % 2)


class Lease:
    """A shared lock on a store's index.pt for as long as a dataset reads the store: `prune` skips a store it
    cannot lock exclusively. flock locks belong to the open file, so the lease holds against prune in other
    processes (another run, another rank on the node; over NFS Linux maps flock to POSIX locks) and in this
    one; forked DataLoader workers share it; the OS drops it with the process. `Lease(None)` holds nothing
    (a DataLoader worker's pickled copy: the main process holds the store)."""

    def __init__(self, folder: Path | None):
        self._file: BinaryIO | None = None
        if folder is None or fcntl is None:
            return
        index = folder / "index.pt"
        self._file = open(index, "rb")  # held open for the lease's life
        fcntl.flock(self._file, fcntl.LOCK_SH)  # waits while a prune that locked first deletes the store
        if os.fstat(self._file.fileno()).st_ino != os.stat(index).st_ino:  # os.stat raises if it is gone
            self.release()
            raise FileNotFoundError(f"{folder} was pruned")

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    __del__ = release


def _delete_unless_in_use(folder: Path) -> bool:
    """Delete a store that no reader holds (`Lease`), holding it exclusively meanwhile; False when in use."""
    if fcntl is None:
        shutil.rmtree(folder, ignore_errors=True)
        return True
    try:
        index = open(folder / "index.pt", "rb")  # closed below, after the deletion
    except OSError:
        return False  # gone already
    with index:
        try:
            fcntl.flock(index, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        shutil.rmtree(folder, ignore_errors=True)
    return True


def prune(root: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Delete other stores: unused for MAX_AGE_DAYS, then the least recently used over the size cap; never a
    store a dataset is reading (see `Lease`), nor one being built (a hidden temporary folder)."""
    now = time.time() if now is None else now
    try:
        cap = float(os.environ.get("TLBENCH_DECODED_CACHE_MB") or DEFAULT_MAX_MB) * 1e6
    except ValueError:
        cap = DEFAULT_MAX_MB * 1e6
    stores = []
    for index in root.glob("*/index.pt"):
        if index.parent.name.startswith("."):
            continue
        try:
            size = (index.parent / "pixels.u8").stat().st_size + index.stat().st_size
            stores.append((index.stat().st_mtime, size, index.parent))
        except OSError:
            continue
    stores.sort(key=lambda s: s[0], reverse=True)
    removed, total = [], 0
    for mtime, size, folder in stores:
        if folder == keep or (now - mtime < MAX_AGE_DAYS * 86400 and total + size <= cap):
            total += size
            continue
        if _delete_unless_in_use(folder):
            removed.append(folder)
        else:
            total += size  # still on the disk
    return removed
