"""Archives in each fetched dataset's real layout (tiny images), and hostile ones, built in memory for tests."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import numpy as np
from PIL import Image


def jpeg(colour=(200, 60, 60), size: int = 32, noise: bool = False, seed: int = 0) -> bytes:
    if noise:  # incompressible: makes an archive big enough to arrive in several chunks
        arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
        img = Image.fromarray(arr, "RGB")
    else:
        img = Image.new("RGB", (size, size), colour)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz", extra: list[tarfile.TarInfo] | None = None,
              dirs: bool = True) -> bytes:
    """A tar with a member per folder (as `tar czf` writes), then `files`, then the `extra` members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        folders = sorted({name.rsplit("/", i)[0] for name in files for i in range(1, name.count("/") + 1)})
        for d in folders if dirs else []:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix: the mode's file type is honoured
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


PET_BREEDS = {"Abyssinian": (200, 120, 60), "Bengal": (180, 150, 90), "beagle": (90, 60, 40),
              "pug": (220, 200, 170)}


def oxford_pets() -> dict[str, bytes]:
    """images.tar.gz (images/<Breed>_<n>.jpg and a stray .mat, as in the real one) and annotations.tar.gz."""
    images, trainval, test = {}, [], []
    for b, (breed, colour) in enumerate(PET_BREEDS.items()):
        for n in range(1, 5):
            stem = f"{breed}_{n}"
            images[f"images/{stem}.jpg"] = jpeg(colour, seed=n)
            line = f"{stem} {b + 1} {1 if breed[0].isupper() else 2} 1"
            (trainval if n <= 3 else test).append(line)
    images["images/Abyssinian_100.mat"] = b"MATLAB 5.0 MAT-file"
    annotations = {
        "annotations/trainval.txt": ("\n".join(trainval) + "\n").encode(),
        "annotations/test.txt": ("\n".join(test) + "\n").encode(),
        "annotations/list.txt": b"#Image CLASS-ID SPECIES BREED ID\n",
        "annotations/README": b"OXFORD-IIIT PET Dataset\n",
        "annotations/trimaps/Abyssinian_1.png": b"\x89PNG\r\n",
        "annotations/xmls/Abyssinian_1.xml": b"<annotation/>",
    }
    return {"images.tar.gz": tar_bytes(images), "annotations.tar.gz": tar_bytes(annotations)}


def corrupt_jpeg() -> bytes:
    data = jpeg(noise=True, size=64, seed=7)
    return data[: len(data) // 2]  # truncated mid-scan, like several PetImages files


def petimages() -> dict[str, bytes]:
    """kagglecatsanddogs_5340.zip: PetImages/Cat and Dog, Thumbs.db files, a 0-byte Cat/666.jpg, a corrupt
    Dog/11702.jpg, and the licence and readme at the top, as Microsoft ships it."""
    files = {"CDLA-Permissive-2.0.pdf": b"%PDF-1.4\n", "readme[1].txt": b"Cats and dogs\n"}
    for label, colour in (("Cat", (200, 60, 60)), ("Dog", (60, 60, 200))):
        for n in range(4):
            files[f"PetImages/{label}/{n}.jpg"] = jpeg(colour, seed=n)
        files[f"PetImages/{label}/Thumbs.db"] = b"\xd0\xcf\x11\xe0"
    files["PetImages/Cat/666.jpg"] = b""
    files["PetImages/Dog/11702.jpg"] = corrupt_jpeg()
    return {"kagglecatsanddogs_5340.zip": zip_bytes(files)}


IMAGENETTE_CLASSES = {"n01440764": (60, 120, 200), "n02102040": (200, 160, 60)}


def imagenette() -> dict[str, bytes]:
    """imagenette2-160.tgz: imagenette2-160/{train,val}/<wnid>/*.JPEG and noisy_imagenette.csv. Noise images,
    so the archive (a few hundred kB) arrives in several chunks and a transfer can be cut mid-way."""
    files = {"imagenette2-160/noisy_imagenette.csv": b"path,noisy_labels_0,is_valid\n"}
    seed = 0
    for split, count in (("train", 4), ("val", 2)):
        for wnid in IMAGENETTE_CLASSES:
            for n in range(count):
                seed += 1
                files[f"imagenette2-160/{split}/{wnid}/{wnid}_{split}{n}.JPEG"] = jpeg(noise=True, size=160, seed=seed)
    return {"imagenette2-160.tgz": tar_bytes(files)}


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, linkname, len(data), 0o644
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info
