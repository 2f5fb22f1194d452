"""Extracting pooled backbone features once, and caching them on disk.

The cache is keyed by backbone, weights identity, preprocessing, image size, the tlbench/torch/torchvision/Pillow
versions and a hash of the code that produces features; inside it each file is identified by (path, size,
mtime). A second run on the same files does no backbone forward pass at all. Entries for files that are gone or
changed are dropped when a cache file is rewritten; cache files unused for 30 days, then the least recently
used beyond 2 GB (TLBENCH_FEATURE_CACHE_MB), are deleted after each write.
Extraction is fast on a CPU: eval mode, inference_mode, BatchNorm folded into the convolutions,
channels_last, and JPEG decoding in DataLoader workers, overlapped with the forward pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import PIL
import torch

from engine.core.checkpoints import versions
from engine.core.events import ProgressAdvanced
from engine.core.files import atomic_write_bytes
from engine.core.paths import cache_dir
from engine.core.records import Preprocessing
from engine.data.images import image_identity
from engine.data.loaders import ImageFiles, auto_workers, data_loader

if TYPE_CHECKING:
    from engine.core.jobs import JobContext
    from engine.models.classifier import Classifier
from engine.models.fast import inference_copy
from engine.runtime import distributed as D
from engine.runtime.precision import autocast, dtype_of, resolve_precision
from engine.runtime.precision_auto import measure_model

# The cache file's layout ({"key", "ids", "features"}); what the features depend on is in the key itself.
FEATURE_VERSION = 2


def cache_key(backbone: str, weights_identity: str, prep: Preprocessing, *, view: str | None = None,
              precision: str = "fp32") -> dict:
    """Everything cached features depend on: the one builder of feature-cache keys (the probe, views, compare,
    auto's search and estimates, and the tests all build them here). A random backbone's identity names its
    seed; `view` names another view of each image than its center crop (engine.features.views); `precision` is
    the resolved precision of the forward pass (bf16 features differ from fp32 ones in the last digits)."""
    libs = versions()
    key = {
        "format": FEATURE_VERSION,
        "backbone": backbone,
        "weights": weights_identity,
        "preprocessing": prep.to_dict(),
        "image_size": prep.crop_size,
        "versions": {"tlbench": libs["tlbench"], "torch": libs["torch"], "torchvision": libs["torchvision"],
                     "pillow": PIL.__version__},
        "code": FeatureCache.code_hash(),
    }
    if view is not None and view != "center":  # the center crop is the plain entry
        key["view"] = view
    return with_precision(key, precision)


def with_precision(key: dict, precision: str) -> dict:
    """`key` for features computed in `precision` (fp32's entries keep the plain key)."""
    key = {k: v for k, v in key.items() if k != "precision"}
    return key if precision == "fp32" else {**key, "precision": precision}


class FeatureCache:
    """<cache>/features/<backbone>-<hash of key>/<hash of dataset root>.pt holding {"key", "ids", "features"};
    loaded with weights_only=True.

    Pruning, so the cache never grows without bound: `save` keeps only entries whose file still exists
    unchanged; `prune` then deletes other cache files unused (not read or written) for MAX_AGE_DAYS, and
    the least recently used beyond TLBENCH_FEATURE_CACHE_MB (default 2048) in all.
    """

    # The code that turns an image file into a feature vector (decoding, transforms, model building and
    # extraction), as files beside this one: editing any of them invalidates every cached feature.
    CODE_DIR = Path(__file__).resolve().parents[1]
    CODE_FILES = ("features/cache.py", "models/fast.py", "data/loaders.py", "data/images.py", "models/classifier.py",
                  "models/registry.py", "models/build.py", "models/family.py", "models/weights.py",
                  "models/efficientnet_lite.py", "models/families/lite.py", "models/families/torchvision_models.py",
                  "models/families/timm_models.py", "models/families/timm_build.py", "runtime/precision.py")
    MAX_AGE_DAYS = 30
    DEFAULT_MAX_MB = 2048

    def __init__(self, key: dict, dataset_root: str | Path, root: Path | None = None):
        self.key = key
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        # one file per dataset, so a small dataset never loads a big one's features
        part = hashlib.sha256(str(Path(dataset_root).resolve()).encode()).hexdigest()[:16]
        self.root = root or cache_dir() / "features"
        self.dir = self.root / f"{key['backbone']}-{digest}"
        self.path = self.dir / f"{part}.pt"

    @classmethod
    def code_hash(cls) -> str:
        """sha256 of the feature code's files (a missing file counts by its name, so it still changes the hash)."""
        h = hashlib.sha256()
        for name in cls.CODE_FILES:
            path = cls.CODE_DIR / name
            h.update(f"{name}\0".encode())
            try:
                h.update(path.read_bytes())
            except OSError:
                h.update(b"<missing>")
        return h.hexdigest()[:16]

    def load(self) -> dict[str, torch.Tensor]:
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
            if data.get("key") != json.loads(json.dumps(self.key)):
                return {}
            stored = dict(zip(data["ids"], data["features"]))
        except FileNotFoundError:
            return {}
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            return {}
        try:
            os.utime(self.path)  # last use, for the least-recently-used pruning
        except OSError:
            pass
        return stored

    @staticmethod
    def current(ident: str) -> bool:
        """Whether the file an entry was extracted from still exists with the same size and mtime."""
        path, _, _ = ident.rpartition("|")[0].rpartition("|")
        try:
            return image_identity(path) == ident
        except OSError:
            return False

    def save(self, entries: dict[str, torch.Tensor]) -> None:
        entries = {i: f for i, f in entries.items() if self.current(i)}
        if not entries:
            return
        import io

        self.dir.mkdir(parents=True, exist_ok=True)
        ids = list(entries)
        buf = io.BytesIO()
        torch.save({"key": self.key, "ids": ids, "features": torch.stack([entries[i] for i in ids])}, buf)
        try:
            atomic_write_bytes(self.path, buf.getvalue())
        except OSError:
            pass  # a cache we cannot write only costs time next run

    def prune(self, now: float | None = None) -> list[Path]:
        """Delete other cache files: unused for MAX_AGE_DAYS, then the least recently used while the cache is
        over its size cap. This file is always kept. Returns what was deleted."""
        now = time.time() if now is None else now
        try:
            cap = float(os.environ.get("TLBENCH_FEATURE_CACHE_MB") or self.DEFAULT_MAX_MB) * 1e6
        except ValueError:
            cap = self.DEFAULT_MAX_MB * 1e6
        files = []
        for path in self.root.glob("*/*.pt"):
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, path))
        files.sort(key=lambda f: f[0], reverse=True)  # most recently used first
        removed, total = [], 0
        for mtime, size, path in files:
            keep = path == self.path or (now - mtime < self.MAX_AGE_DAYS * 86400 and total + size <= cap)
            if keep:
                total += size
                continue
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                continue
        for folder in {p.parent for p in removed}:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass
        return removed


def extract(
    model: Classifier,
    paths: list[str],
    prep: Preprocessing,
    device: torch.device,
    batch_size: int = 64,
    workers: int | None = None,
    ctx: JobContext | None = None,
    transform=None,
    *,
    precision: str = "fp32",
    backbone: str | None = None,
) -> tuple[torch.Tensor, dict[int, str], float]:
    """Pooled features for `paths` -> (features [N, D] on CPU, {index: reason} for unusable files, images/s).

    `transform` (PIL image -> uint8 [3, crop, crop]) replaces the eval transform: another view of each image.
    `precision` (engine.runtime.precision): the forward pass's autocast; `auto` measures `backbone` on this
    device once (a few batches of this very network) and remembers the fastest safe choice."""
    fast = inference_copy(model, device, prep.crop_size)
    dtype = dtype_of(extraction_precision(lambda: fast, device, prep.crop_size, precision, backbone)[0])
    workers = auto_workers(device) if workers is None else workers
    loader = data_loader(
        ImageFiles(paths, prep, transform), batch_size=batch_size, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    feats: torch.Tensor | None = None
    errors: dict[int, str] = {}
    done, start = 0, time.perf_counter()
    with torch.inference_mode():
        for x, idx, err in loader:
            x = x.to(device, non_blocking=True).float().div_(255)
            if device.type in ("cpu", "cuda"):
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, dtype):
                f = fast.features(x)
            f = f.float().cpu()
            if feats is None:
                feats = torch.empty(len(paths), f.shape[1], device="cpu")
            feats[idx] = f
            for i, e in zip(idx.tolist(), err):
                if e:
                    errors[i] = e
            done += len(idx)
            if ctx is not None:
                rate = done / max(time.perf_counter() - start, 1e-6)
                ctx.progress(ProgressAdvanced("extract", done, len(paths), "images", rate), force=done == len(paths))
                ctx.check()
    seconds = time.perf_counter() - start
    if feats is None:
        feats = torch.empty(0, 0, device="cpu")
    return feats, errors, (len(paths) / seconds if seconds > 0 and paths else 0.0)


def extraction_precision(fast_copy: Callable[[], Classifier], device: torch.device, size: int, precision: str,
                         backbone: str | None) -> tuple[str, str]:
    """(the precision of extraction, why); `auto` measures the inference copy's own forward pass (`fast_copy()`
    is called only when a measurement is due)."""
    def measure(names: list[str]) -> dict[str, float]:
        fast = fast_copy()
        return measure_model(fast, device, size, names, forward=fast.features)

    return resolve_precision(device, precision, backbone=backbone, measure=measure)


def joined() -> D.DistInfo:
    """This process's place in the torchrun job it joined (engine.train.prepare joins it), or a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return D.env_info()
    return D.SINGLE


def cache_view(cache: FeatureCache, paths: list[str], dist: D.DistInfo) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the cached features, each path's identity) as rank 0 sees them, on every rank.

    Under torchrun each node may have its own cache (and its own copy of the dataset): ranks that looked up
    their own would disagree on what is missing, shard different lists, and a warm node would skip the gather
    a cold one waits in. So rank 0 reads, and sends the entries these paths need."""
    if not dist.enabled:
        return cache.load(), [image_identity(p) for p in paths]
    view = None
    if dist.is_main:
        stored = cache.load()
        ids = [image_identity(p) for p in paths]
        view = ({i: stored[i] for i in ids if i in stored}, ids)
    view = D.broadcast(dist, view)
    assert view is not None  # rank 0 sends what its cache holds
    if dist.is_main:  # rank 0 keeps every entry of its file, for the save below
        return stored, view[1]
    return view


def cached_features(
    model_factory: Callable[[], Classifier],
    key: dict,
    dataset_root: str | Path,
    paths: list[str],
    device: torch.device,
    batch_size: int = 64,
    workers: int | None = None,
    ctx: JobContext | None = None,
    transform=None,
    *,
    precision: str = "auto",
    dist: D.DistInfo | None = None,
) -> tuple[torch.Tensor, dict[int, str], dict]:
    """Features for `paths`, from the cache where the file is unchanged; extracts only the rest.
    `transform` (see `extract`) gives another view: its key must name it (engine.features.views does).

    `model_factory` builds the model only when something must be extracted (or when `auto` precision has not
    been measured for this backbone on this device yet): a full hit loads no backbone. The resolved precision
    is part of the cache key when it is not fp32 (bf16 features differ from fp32 ones in the last digits).

    Under torchrun (`dist`, default: the process group this process joined, if any) each rank extracts its
    shard of the missing files, every rank receives all of them, and rank 0 alone writes the cache; rank 0
    chooses the precision for all, so every shard is computed alike. Features travel between ranks as
    pickled host tensors (torch.distributed's object collectives).

    Returns (features, {index: reason}, stats) with stats {"feature_cache": "hit"|"miss", "extracted",
    "extract_images_per_s" (all ranks together), "extract_precision"}. A file that fails to decode is never
    cached, so it is retried next time.
    """
    dist = dist if dist is not None else joined()
    built: list[Classifier] = []

    def model() -> Classifier:
        if not built:
            built.append(model_factory())
        return built[0]

    prep = Preprocessing.from_dict(key["preprocessing"])
    decided = None
    if dist.is_main:  # one measurement, one choice for every rank's shard
        decided = extraction_precision(lambda: inference_copy(model(), device, prep.crop_size), device,
                                       prep.crop_size, precision, key["backbone"])
    decided = D.broadcast(dist, decided)
    assert decided is not None  # rank 0 sends its choice
    resolved, why = decided
    key = with_precision(key, resolved)
    cache = FeatureCache(key, dataset_root)
    stored, ids = cache_view(cache, paths, dist)
    missing = [i for i, ident in enumerate(ids) if ident not in stored]
    errors: dict[int, str] = {}
    rate = 0.0
    if missing:
        if ctx is not None:
            ctx.log(f"extracting features for {len(missing)} of {len(paths)} images "
                    f"({len(paths) - len(missing)} cached)")
        mine = missing[dist.rank::dist.world_size]  # every rank's shard: the same list, the same order
        new, errs, rate = torch.empty(0, 0, device="cpu"), {}, 0.0
        if mine:
            new, errs, rate = extract(model(), [paths[i] for i in mine], prep, device, batch_size, workers, ctx,
                                      transform, precision=resolved)
        shards = D.gather(dist, (mine, new, errs, rate))
        for shard, feats, errs, _ in shards:
            for j, i in enumerate(shard):
                if j in errs:
                    errors[i] = errs[j]
                else:
                    stored[ids[i]] = feats[j].clone()
        rate = sum(r for *_, r in shards)
        if dist.is_main:
            cache.save(stored)
            cache.prune()
    elif ctx is not None:
        ctx.log(f"feature cache hit: {len(paths)} images, no backbone forward pass")
    dim = next(iter(stored.values())).shape[0] if stored else 0
    out = torch.zeros(len(paths), dim, device="cpu")  # host-side: features are kept on the CPU
    for i, ident in enumerate(ids):
        if i not in errors:
            out[i] = stored[ident]
    stats = {"feature_cache": "miss" if missing else "hit", "extracted": len(missing) - len(errors),
             "extract_images_per_s": round(rate, 2), "extract_precision": resolved,
             "extract_precision_reason": why}
    return out, errors, stats
