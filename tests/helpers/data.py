"""Data the tests make: tiny generated datasets (one colour per class), the 37 Oxford-IIIT Pets class names,
and where the repository, the bundled demo and the shared photos are."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
CATS_DOGS = SHARED_DATA / "cats-dogs-dev"
DEMO = ROOT / "data" / "demo" / "digits"


def write_image(path: Path, rgb: tuple[int, int, int], size: int = 32, noise: int = 30, seed: int = 0,
                fmt: str | None = None) -> Path:
    """A solid-colour image with noise: classes of different colours are easy to tell apart."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb, dtype=np.int16) + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), "RGB").save(path, format=fmt)
    return path


COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200), "yellow": (220, 210, 40)}


def make_dataset(root: Path, classes: dict[str, int] | None = None, size: int = 32, ext: str = ".png") -> Path:
    """root/<class>/<class>_<i><ext>, one colour per class."""
    classes = classes or {"red": 12, "blue": 12}
    for c, n in classes.items():
        for i in range(n):
            write_image(root / c / f"{c}_{i}{ext}", COLOURS.get(c, (128, 128, 128)), size, seed=i + 100 * len(c))
    return root


# The 37 Oxford-IIIT Pets breeds as the dataset names them: long names, mixed case, the sizes the workbench
# must show readably at 80x24.
OXFORD_PETS_CLASSES = [
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal", "Birman",
    "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
    "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
    "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll",
    "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
    "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
]


def make_pets_like(root: Path, per_class: int = 4, size: int = 32) -> Path:
    """root/<breed>/<breed>_<i>.jpg for the 37 Oxford breeds: one hue per class (easy to learn), small files."""
    import colorsys

    for k, name in enumerate(OXFORD_PETS_CLASSES):
        r, g, b = colorsys.hsv_to_rgb(k / len(OXFORD_PETS_CLASSES), 0.8, 0.85)
        for i in range(per_class):
            write_image(root / name / f"{name}_{i + 1}.jpg", (int(r * 255), int(g * 255), int(b * 255)), size,
                        noise=20, seed=1000 * k + i)
    return root


def tree_hash(root: Path) -> str:
    """Hash of every path, size, mode and content under root (links not followed): proves nothing changed."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, root)}|{st.st_size}|{st.st_mode}|{st.st_mtime_ns}".encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode) and os.access(p, os.R_OK):  # never open a FIFO
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()
