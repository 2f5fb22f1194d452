"""Other views of each image, through the probe's feature cache: its mirror image (test-time augmentation), ten
crops (the four corners and the center of the resized image's central square, and their mirror images: the
classic ten-crop test-time augmentation) and K random crops and flips (augmented-view features for training a
linear head).

Each view is one more `cached_features` call with its own transform, and its own cache entry (the key names the
view), so a view is extracted once and is free for every later search, `compare` or rerun. A random view is
drawn from a seed made of the view's number and the image's own pixels (not from its position in a list, nor
from a DataLoader worker's RNG): the same image gets the same crop whichever split, order or worker count.
"""

from __future__ import annotations

import zlib

import torch
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from engine.core.jobs import JobContext
from engine.core.records import Preprocessing
from engine.data.images import image_identity
from engine.data.loaders import _center_offset, eval_transform
from engine.features.cache import FeatureCache, cache_key, cached_features
from engine.models.build import build_classifier
from engine.models.registry import get_spec, weights_identity
from engine.runtime.precision import known_choice

CENTER, FLIP = "center", "flip"
TEN_CROP = "ten"  # views ten0 … ten9
CROP_SCALE = (0.35, 1.0)  # the `light` augmentation's RandomResizedCrop, as fine-tuning draws them


class FlipView:
    """The eval transform's center crop, mirrored left-right."""

    def __init__(self, prep: Preprocessing):
        self.prep = prep

    def __call__(self, img) -> torch.Tensor:
        return eval_transform(img, self.prep).flip(-1)


def outer_square(prep: Preprocessing) -> Preprocessing:
    """The input a ten-crop model is given: the resized image's central square (its shorter side), from which
    it takes its crops itself (engine.models.ensemble.ViewAveraged)."""
    return Preprocessing(prep.resize_size, prep.resize_size, prep.interpolation, prep.mean, prep.std)


def ten_crop_offsets(prep: Preprocessing) -> list[tuple[int, int]]:
    """(top, left) of the five crops in the outer square: its four corners, then its center (torchvision's
    center-crop offset)."""
    extra = prep.resize_size - prep.crop_size
    mid = _center_offset(extra)
    return [(0, 0), (0, extra), (extra, 0), (extra, extra), (mid, mid)]


def ten_crop_views() -> list[str]:
    return [f"{TEN_CROP}{i}" for i in range(10)]


class SquareCropView:
    """Ten-crop view `number`: crop number % 5 of the outer square (ten_crop_offsets), mirrored from 5 on. The
    same pixels the model's own crops of that square give: slicing commutes with scaling to [0, 1]."""

    def __init__(self, prep: Preprocessing, number: int):
        self.outer, self.size = outer_square(prep), prep.crop_size
        self.top, self.left = ten_crop_offsets(prep)[number % 5]
        self.mirror = number >= 5

    def __call__(self, img) -> torch.Tensor:
        x = eval_transform(img, self.outer)[:, self.top:self.top + self.size, self.left:self.left + self.size]
        return x.flip(-1) if self.mirror else x.contiguous()


class RandomCropView:
    """A random resized crop (and a coin-flip mirror), seeded by (view number, the image's pixels)."""

    def __init__(self, prep: Preprocessing, number: int):
        self.prep, self.number = prep, number
        self.crop = v2.RandomResizedCrop(prep.crop_size, scale=CROP_SCALE,
                                         interpolation=InterpolationMode(prep.interpolation), antialias=True)

    def __call__(self, img) -> torch.Tensor:
        thumb = img.resize((16, 16)).tobytes()  # a cheap fingerprint of the pixels
        g = torch.Generator().manual_seed(zlib.crc32(thumb) * 1000 + self.number)
        # torchvision's transforms draw from the global RNG: draw here under a fork so it is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g, device="cpu")))
            x = TF.pil_to_tensor(self.crop(img))
            flip = bool(torch.rand(1, device="cpu") < 0.5)
        return x.flip(-1) if flip else x


def view_transform(view: str, prep: Preprocessing):
    """None for the center crop (the cache's plain entry), else the view's transform."""
    if view == CENTER:
        return None
    if view == FLIP:
        return FlipView(prep)
    if view.startswith("crop"):
        return RandomCropView(prep, int(view[4:]))
    if view.startswith(TEN_CROP):
        return SquareCropView(prep, int(view[len(TEN_CROP):]))
    raise ValueError(f"unknown view {view!r}")


def view_key(backbone: str, identity: str, prep: Preprocessing, view: str, precision: str = "fp32") -> dict:
    return cache_key(backbone, identity, prep, view=view, precision=precision)


def crop_views(k: int) -> list[str]:
    return [f"crop{i}" for i in range(k)]


def missing_count(backbone: str, img_size: int, views: list[str], root: str, paths: list[str],
                  weights: str | None = None, seed: int = 0, device: torch.device | None = None,
                  precision: str = "auto", prep: Preprocessing | None = None) -> int:
    """How many (image, view) pairs are not in the cache yet: what a candidate would extract. The features
    would be computed in the precision `precision` resolves to on `device`; when that needs a measurement not
    made yet, nothing can be cached under its choice, and every pair counts as missing. `prep`: as for
    view_features."""
    resolved = known_choice(device or torch.device("cpu"), precision, backbone)
    if resolved is None:
        return len(paths) * len(views)
    spec = get_spec(backbone)
    prep = prep or spec.preprocessing(img_size)
    identity = weights_identity(spec, weights, seed=seed)
    ids = [image_identity(p) for p in paths]
    total = 0
    for view in views:
        stored = FeatureCache(view_key(backbone, identity, prep, view, resolved), root).load()
        total += sum(1 for i in ids if i not in stored)
    return total


def view_features(
    backbone: str,
    img_size: int,
    views: list[str],
    root: str,
    paths: list[str],
    device: torch.device,
    *,
    weights: str | None = None,
    seed: int = 0,
    batch_size: int = 64,
    workers: int | None = None,
    ctx: JobContext | None = None,
    precision: str = "auto",
    prep: Preprocessing | None = None,
) -> tuple[torch.Tensor, dict[int, str], str]:
    """Features of every view: [N, V, D] on the CPU, {index: reason} for unusable files, and the precision they
    were computed in (`precision` resolved once, by the first view, and used for every view). The backbone is
    built once, on the first view that misses the cache. `prep`: the eval transform, when not the backbone's
    own at `img_size` (auto feeds every backbone one input geometry; the mean and std stay the backbone's)."""
    spec = get_spec(backbone)
    prep = prep or spec.preprocessing(img_size)
    identity = weights_identity(spec, weights, seed=seed)
    built = {}

    def model():
        if "m" not in built:
            built["m"] = build_classifier(backbone, 2, weights, ctx, seed)[0]  # features only
        return built["m"]

    feats, errors = [], {}
    for view in views:
        f, err, stats = cached_features(model, view_key(backbone, identity, prep, view), root, paths, device,
                                        batch_size, workers, ctx, view_transform(view, prep), precision=precision)
        precision = stats["extract_precision"]  # the first view decided: the others follow it
        feats.append(f)
        errors.update(err)
    return torch.stack(feats, 1), errors, precision
