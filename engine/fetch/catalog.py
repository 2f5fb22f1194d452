"""The lesson's datasets: where each comes from (archives, sizes, checksums), what it holds, and the names
people type for it. Plain data, no torch and no image libraries (the spec layer): `tlbench fetch --help` lists
them before anything heavy loads. engine.fetch.sources fetches them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.core.errors import choice_error
from engine.fetch.downloads import human_bytes


@dataclass(frozen=True)
class Archive:
    url: str
    size: int  # bytes
    md5: str | None  # None: the source publishes no checksum (the dataset's notes say what we check instead)

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSource:
    name: str
    title: str
    description: str
    folder: str  # DEST/<folder> is the dataset, opened with `tlbench DEST/<folder>`
    layout: str  # what engine.data.scan must detect there
    archives: tuple[Archive, ...]
    homepage: str
    inner: str = ""  # the archives' own top folder that becomes DEST/<folder> ("" = the archives' root)
    expect: tuple[str, ...] = ()  # paths that must exist inside the folder once extracted
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def download_bytes(self) -> int:
        return sum(a.size for a in self.archives)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "description": self.description,
            "download_bytes": self.download_bytes, "download_size": human_bytes(self.download_bytes),
            "folder": self.folder, "layout": self.layout, "homepage": self.homepage, "notes": list(self.notes),
            "archives": [{"name": a.filename, "url": a.url, "bytes": a.size, "md5": a.md5} for a in self.archives],
        }


DATASETS: dict[str, DatasetSource] = {
    "oxford-pets": DatasetSource(
        name="oxford-pets",
        title="Oxford-IIIT Pets",
        description="7,390 photos of 37 cat and dog breeds, with the official trainval/test split",
        folder="oxford-iiit-pet",
        layout="oxford-pets",
        # The archives, URLs and md5s torchvision's OxfordIIITPet uses; sizes as TFDS records them.
        archives=(
            Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", 791_918_971,
                    "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
            Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz", 19_173_078,
                    "95a8c909bbe2e81eed6a22bccdf3f68f"),
        ),
        homepage="https://www.robots.ox.ac.uk/~vgg/data/pets/",
        expect=("images", "annotations/trainval.txt", "annotations/test.txt"),
        notes=("Licence: CC BY-SA 4.0 (see the homepage).",),
    ),
    "cats-vs-dogs": DatasetSource(
        name="cats-vs-dogs",
        title="Microsoft Cats and Dogs (PetImages)",
        description="25,000 photos, 2 classes (Cat, Dog); includes a 0-byte file and corrupt images",
        folder="cats-vs-dogs",
        layout="petimages",
        # Microsoft publishes no checksum for this zip. We check the size every observed download reports
        # (824,887,076 bytes) and every member's CRC-32 before extracting.
        archives=(
            Archive("https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
                    "kagglecatsanddogs_5340.zip", 824_887_076, None),
        ),
        homepage="https://www.microsoft.com/en-us/download/details.aspx?id=54765",
        expect=("PetImages/Cat", "PetImages/Dog"),
        notes=(
            "Microsoft publishes no checksum for this archive: tlbench verified its size and the CRC-32 of "
            "every file inside it instead.",
            "This dataset contains a 0-byte file and corrupt images: `tlbench scan` lists them, and training "
            "skips them (nothing is deleted).",
            "Licence: CDLA-Permissive-2.0 (the PDF inside the folder).",
        ),
    ),
    "imagenette": DatasetSource(
        name="imagenette",
        title="Imagenette (160 px)",
        description="13,394 ImageNet photos of 10 easy classes (shorter side 160 px), with a train/val split",
        folder="imagenette2-160",
        layout="train-val",
        # fast.ai's archive; the md5 is the one torchvision's Imagenette uses, the size as TFDS records it.
        archives=(
            Archive("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz", 99_003_388,
                    "e793b78cc4c9e9a4ccc0c1155377a412"),
        ),
        homepage="https://github.com/fastai/imagenette",
        inner="imagenette2-160",
        expect=("train", "val"),
        notes=("Class folders are ImageNet WordNet ids (n01440764 = tench, n02102040 = English springer, …).",),
    ),
}


# The names people type for them (the datasets' own names, and the lesson's).
ALIASES = {"pets": "oxford-pets", "oxford-iiit-pet": "oxford-pets", "oxford-iiit-pets": "oxford-pets",
           "petimages": "cats-vs-dogs", "cats-dogs": "cats-vs-dogs", "dogs-vs-cats": "cats-vs-dogs"}


def resolve(name: str) -> DatasetSource:
    """The registry entry for `name` (case, '_' vs '-' and common aliases forgiven); a ConfigError naming the
    allowed ones."""
    key = str(name).strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise choice_error("dataset", name, DATASETS, "Run `tlbench fetch` without a name to list them.")
    return DATASETS[key]


