"""Finding a dataset's layout and labels, without reading any image.

Layouts, detected automatically:
  class-folders  root/<class>/<image>
  train-val      root/train/<class>/<image> and root/val|valid|validation|test/<class>/<image>
  oxford-pets    root/images/<Breed_Name>_<n>.jpg (+ root/annotations/trainval.txt, test.txt), or the flat folder
  petimages      the Microsoft download: PetImages/Cat, PetImages/Dog
`find_items` returns (layout, [(path, label, split)], notes); `DatasetInfo` is what a scan reports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import DatasetError
from engine.data.images import is_image_name

if TYPE_CHECKING:
    pass

VAL_DIR_NAMES = ("val", "valid", "validation", "test")
PETS_NAME = re.compile(r"^(?P<breed>.+)_(?P<num>\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
IGNORED_DIRS = {"__MACOSX", "annotations"}


@dataclass(frozen=True)
class Sample:
    path: str  # absolute
    label: int
    split: str | None = None  # "train" / "val" when the layout fixes it; None when tlbench splits


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


@dataclass
class DatasetInfo:
    root: Path
    layout: str
    classes: list[str]
    samples: list[Sample]
    unreadable: list[Unreadable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    median_side: int | None = None  # of the usable images; guides the default input size

    @property
    def name(self) -> str:
        return self.root.name

    def counts(self) -> list[int]:
        counts = [0] * len(self.classes)
        for s in self.samples:
            counts[s.label] += 1
        return counts

    def to_json(self) -> dict:
        return {
            "layout": self.layout,
            "root": str(self.root),
            "images": len(self.samples),
            "classes": [{"name": n, "count": c} for n, c in zip(self.classes, self.counts())],
            "unreadable": [{"path": u.path, "reason": u.reason} for u in self.unreadable],
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------- layouts


def _visible_dirs(path: Path) -> list[Path]:
    out = []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as err:
        raise DatasetError(f"Cannot list {path}: {err.strerror or err}.") from None
    for e in entries:
        if e.name.startswith(".") or e.name in IGNORED_DIRS:
            continue
        try:
            if e.is_dir():
                out.append(Path(e.path))
        except OSError:
            continue
    return out


def _image_files(path: Path) -> list[str]:
    """Entries named like images directly in `path`, except folders."""
    out = []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return out
    for e in entries:
        if not is_image_name(e.name):
            continue
        try:
            if e.is_dir():
                continue
        except OSError:
            pass  # a looping link: listed, and the scan says why it is unusable
        # anything else named like an image (file, broken link, FIFO…) is listed; the scan judges it
        out.append(os.path.abspath(e.path))
    return out


def _nested_images(path: Path, limit: int = 100_000) -> tuple[int, str | None]:
    """Images in sub-folders below `path` (not following links, so loops cannot trap us)."""
    count, example = 0, None
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if Path(dirpath) == path:
            continue
        n = sum(1 for f in filenames if is_image_name(f))
        if n and example is None:
            example = dirpath
        count += n
        if count >= limit:
            break
    return count, example


def _is_loop(child: Path, root: Path) -> bool:
    try:
        target = child.resolve()
        return root.resolve().is_relative_to(target)
    except (OSError, RuntimeError):
        return True


def _class_folders(root: Path, split: str | None, notes: list[str]) -> list[tuple[str, str, str | None]]:
    """(path, class name, split) for root/<class>/<image>."""
    items: list[tuple[str, str, str | None]] = []
    for d in _visible_dirs(root):
        if _is_loop(d, root):
            notes.append(f"Skipped {d.name}/: a symbolic link back into the dataset (a loop).")
            continue
        files = _image_files(d)
        nested, example = _nested_images(d)
        if nested and example is not None:  # an image was found, so was its folder
            notes.append(
                f"Ignored {nested} image(s) in sub-folders of {d.name}/ (e.g. {Path(example).relative_to(root)}): "
                "tlbench reads one level of class folders. Flatten them, or point tlbench at the deeper folder."
            )
        if not files:
            if not nested:
                notes.append(f"Skipped {d.name}/: no images in it.")
            continue
        items.extend((f, d.name, split) for f in files)
    return items


def _find_petimages(root: Path) -> Path | None:
    for cand in (root, root / "PetImages"):
        if (cand / "Cat").is_dir() and (cand / "Dog").is_dir():
            names = {p.name for p in _visible_dirs(cand)}
            if names <= {"Cat", "Dog"}:
                return cand
    return None


def _pets_images_dir(root: Path) -> Path | None:
    for cand in (root / "images", root):
        if not cand.is_dir():
            continue
        files = [os.path.basename(f) for f in _image_files(cand)]
        if len(files) < 4:
            continue
        matched = [PETS_NAME.match(f) for f in files]
        breeds = {m.group("breed") for m in matched if m}
        if sum(1 for m in matched if m) >= 0.9 * len(files) and len(breeds) >= 2 and not _visible_dirs(cand):
            return cand
    return None


def _pets_items(images: Path, notes: list[str]) -> list[tuple[str, str, str | None]]:
    split_of: dict[str, str] = {}
    for ann in (images.parent / "annotations", images / "annotations"):
        if (ann / "trainval.txt").exists() and (ann / "test.txt").exists():
            for fname, split in (("trainval.txt", "train"), ("test.txt", "val")):
                for line in (ann / fname).read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.strip() and not line.startswith("#"):
                        split_of[line.split()[0]] = split
            notes.append(f"Using the official split from {ann}: trainval.txt for training, test.txt for validation.")
            break
    items = []
    skipped = 0
    for f in _image_files(images):
        m = PETS_NAME.match(os.path.basename(f))
        if not m:
            continue
        stem = os.path.splitext(os.path.basename(f))[0]
        split = split_of.get(stem) if split_of else None
        if split_of and split is None:
            skipped += 1
            continue
        items.append((f, m.group("breed"), split))
    if skipped:
        notes.append(f"{skipped} image(s) are in neither trainval.txt nor test.txt and were left out.")
    breeds = {b for _, b, _ in items}
    cats = sum(1 for b in breeds if b[:1].isupper())
    notes.append(f"{cats} cat breeds (capitalised names) and {len(breeds) - cats} dog breeds (lower case).")
    return items


def find_items(root: Path) -> tuple[str, list[tuple[str, str, str | None]], list[str]]:
    """Detect the layout; return (layout name, [(path, class, split)], notes)."""
    notes: list[str] = []
    if not root.exists():
        raise DatasetError(f"Dataset folder {root} does not exist. Check the path, or run `tlbench fetch` to download one.")
    if root.is_file():
        hint = " It looks like an archive: extract it first, or use `tlbench fetch`." if re.search(
            r"\.(zip|tar|tgz|gz|bz2|xz)$", root.name) else ""
        raise DatasetError(f"{root} is a file; tlbench needs a folder of images.{hint}")

    pet = _find_petimages(root)
    if pet is not None:
        return "petimages", _class_folders(pet, None, notes), notes

    subdirs = {p.name.lower(): p for p in _visible_dirs(root)}
    val_name = next((n for n in VAL_DIR_NAMES if n in subdirs), None)
    if "train" in subdirs and val_name:
        items = _class_folders(subdirs["train"], "train", notes)
        items += _class_folders(subdirs[val_name], "val", notes)
        if val_name != "test" and "test" in subdirs:
            notes.append(f"Using {subdirs[val_name].name}/ for validation; test/ is left untouched.")
        return "train-val", items, notes

    pets = _pets_images_dir(root)
    if pets is not None:
        return "oxford-pets", _pets_items(pets, notes), notes

    items = _class_folders(root, None, notes)
    loose = len(_image_files(root))
    if loose and items:
        notes.append(f"Ignored {loose} image(s) directly in {root.name}/: images belong in a folder named after their class.")
    if not items:
        if loose:
            raise DatasetError(
                f"{root} holds {loose} images but no class folders. Put each class in its own folder "
                f"({root}/<class>/image.jpg), or name files like Oxford Pets (Breed_Name_12.jpg)."
            )
        nested_msg = next((n for n in notes if n.startswith("Ignored")), None)
        if nested_msg:
            raise DatasetError(f"No images directly inside the class folders of {root}. {nested_msg}")
        raise DatasetError(f"No images found in {root}. tlbench reads {', '.join(sorted({'.jpg', '.png'}))} and other "
                           "image files in one folder per class.")
    return "class-folders", items, notes

