"""The training data: augmentation seeded per sample, each rank's sample order, the loaders' collation,
which drops the files that broke since the scan (`DropBadFiles`), and the decoded-image cache's dataset
(engine.data.decoded: decoded once, later epochs only crop, flip and augment).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate
from torchvision.transforms import InterpolationMode, v2

from engine.core.errors import JobError
from engine.core.paths import cache_dir
from engine.data.decoded import DecodedFiles, build_store, open_store
from engine.data.loaders import ImageFiles, data_loader
from engine.runtime import distributed as D
from engine.runtime.seeding import derived_seed

if TYPE_CHECKING:
    from engine.core.jobs import JobContext
    from engine.core.records import Preprocessing


def train_transform(preset: str, prep: Preprocessing):
    """PIL image -> uint8 tensor with the preset's augmentation (None: the eval transform)."""
    if preset == "none":
        return None
    size = prep.crop_size
    interp = InterpolationMode(prep.interpolation)
    if preset == "light":
        return v2.Compose([v2.RandomResizedCrop(size, scale=(0.35, 1.0), interpolation=interp, antialias=True),
                           v2.RandomHorizontalFlip(), v2.PILToTensor()])
    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=interp, antialias=True),
                       v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(interpolation=interp), v2.PILToTensor(),
                       v2.RandomErasing(p=0.25)])


class ResizedCropFlip:
    """v2.RandomResizedCrop then RandomHorizontalFlip on a uint8 CHW tensor, the crop resized in channels_last:
    torch's antialiased uint8 kernel ran 3x as fast in that layout here (0.76 against 2.1 ms for a 128 px
    crop), and the decoded-image cache hands its images over in it. The crop is drawn by RandomResizedCrop
    itself (the same draw from the same seed)."""

    def __init__(self, size: int, scale: tuple[float, float], interpolation: InterpolationMode):
        self.crop = v2.RandomResizedCrop(size, scale=scale, interpolation=interpolation, antialias=True)
        self.size, self.mode = size, interpolation.value

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = self.crop.make_params([x])
        window = x[None, :, p["top"]:p["top"] + p["height"], p["left"]:p["left"] + p["width"]]
        out = F.interpolate(window.contiguous(memory_format=torch.channels_last), size=(self.size, self.size),
                            mode=self.mode, align_corners=False, antialias=True)[0]
        if torch.rand(1, device="cpu").item() < 0.5:
            out = out.flip(-1)
        return out.contiguous()


def tensor_train_transform(preset: str, prep: Preprocessing):
    """`train_transform` for a uint8 CHW tensor already at the working resolution (the decoded-image cache)
    instead of a PIL image; None: the eval center crop."""
    if preset == "none":
        return None
    size = prep.crop_size
    interp = InterpolationMode(prep.interpolation)
    if preset == "light":
        return ResizedCropFlip(size, (0.35, 1.0), interp)
    return v2.Compose([ResizedCropFlip(size, (0.08, 1.0), interp), v2.TrivialAugmentWide(interpolation=interp),
                       v2.RandomErasing(p=0.25)])


def training_files(paths: list[str], prep: Preprocessing, preset: str, decoded_cache: bool, workers: int,
                   info: D.DistInfo, ctx: JobContext) -> ImageFiles | DecodedFiles:
    """The training set as the loader reads it: from the decoded-image cache or, with --no-decoded-cache,
    decoded every epoch. Under torchrun the first process of each machine (local rank 0) builds the store
    while the others wait, then every process finds it whole (it appears in one rename).

    Every process learns every builder's outcome at once (a gather, which is also the wait): a failed build
    stops all of them with the same error. A builder that raised alone left the others waiting for it until
    the process group's timeout, 30 minutes."""
    if not decoded_cache:
        return ImageFiles(paths, prep, train_transform(preset, prep))
    failure: Exception | None = None
    if info.local_rank == 0:
        try:
            build_store(paths, prep, workers, log=ctx.log)
        except Exception as err:  # noqa: BLE001 - every rank fails with it, none waits for a store never built
            failure = err
    outcomes = D.gather(info, (socket.gethostname(), f"{type(failure).__name__}: {failure}" if failure else None))
    failed = [(rank, host, why) for rank, (host, why) in enumerate(outcomes) if why]
    if failed:
        raise store_failed(*failed[0], info) from failure
    return open_store(paths, prep, workers, tensor_train_transform(preset, prep), log=ctx.log)


def store_failed(rank: int, host: str, why: str, info: D.DistInfo) -> JobError:
    where = f" on rank {rank} ({host})" if info.enabled else ""
    return JobError(
        f"The decoded-image cache could not be built{where}: {why}. It is written to {cache_dir() / 'decoded'}: "
        "make room or allow writing there (TLBENCH_CACHE moves it), or train with --no-decoded-cache (every "
        "image is then decoded every epoch).", title="Decoded-image cache failed")


def epoch_indices(n: int, batch_size: int, seed: int, epoch: int, info: D.DistInfo) -> list[int]:
    """This rank's sample order for an epoch: DistributedSampler's (seeded by seed and epoch, the same with
    one process or many), without a last batch of one image (BatchNorm cannot train on it)."""
    sampler = DistributedSampler(cast(Dataset, range(n)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    order = list(sampler)
    if len(order) % batch_size == 1 and len(order) > 1:
        order = order[:-1]
    return order


class SeededAugmentation(Dataset):
    """The training files, each sample augmented from its own seed: (run seed, epoch, sample index).

    DataLoader workers each seed one RNG per epoch and take batches in turn, so the random numbers a sample
    got depended on the number of workers and on where the epoch started: a resumed epoch (which starts mid-way)
    drew different augmentation, and every torchrun rank, seeded alike, drew the same parameters as the
    others. Seeded per sample, the draw is the same with any worker count, after a resume, and whichever rank
    holds the sample; ranks hold different samples, so their draws differ. The global RNG is left as it was
    (torchvision's transforms draw from it): dropout and the main process's state do not see augmentation."""

    def __init__(self, files: ImageFiles | DecodedFiles, seed: int, epoch: int):
        self.files, self.seed, self.epoch = files, seed, epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        if self.files.transform is None:  # no augmentation: nothing random to seed
            return self.files[i]
        with torch.random.fork_rng(devices=[]):  # the CPU generator only; CUDA's is never touched here
            torch.default_generator.manual_seed(derived_seed(self.seed, self.epoch, i))
            return self.files[i]


class Batch(NamedTuple):
    """A loader's batch once the files that broke since the scan are out. A NamedTuple: the DataLoader pins its
    tensors for a CUDA device as it pins a plain tuple's."""

    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N], on the host
    index: torch.Tensor  # int64 [N]: the samples' positions in the dataset
    failed: dict[str, str]  # path -> why, for the files dropped from this batch
    usable: bool  # False: every file failed, and `images` are their blanks (see DropBadFiles)


class DropBadFiles:
    """The DataLoader's collate_fn for ImageFiles samples (image, index, error): a file that broke since the
    scan is dropped from its batch and named in `failed`, so the loop only counts and lists it.

    When every file of a batch failed there is nothing to drop to: the blanks stay, marked not `usable`. One
    process skips such a batch; under torchrun the rank still runs a zero-weight step on them, because the other
    ranks wait for it in DDP's gradient all-reduce. Runs in the loader's workers (picklable, host tensors)."""

    def __init__(self, labels: torch.Tensor, paths: list[str]):
        self.labels, self.paths = labels, paths

    def __call__(self, samples: list[tuple[torch.Tensor, int, str]]) -> Batch:
        failed = {self.paths[i]: err for _, i, err in samples if err}
        good = [s for s in samples if not s[2]] or samples
        images, index = default_collate([(x, i) for x, i, _ in good])
        return Batch(images, self.labels[index], index, failed, usable=len(failed) < len(samples))


def train_loader(files: ImageFiles | DecodedFiles, indices: list[int], batch_size: int, workers: int, device: torch.device,
                 seed: int, epoch: int, collate_fn: DropBadFiles) -> DataLoader:
    # The DataLoader draws its workers' base seed from `generator`, or else from the global RNG, which last.pt
    # restores: a resumed epoch creates its loader at another point of that RNG's sequence than the
    # uninterrupted run did, so drawing from it would shift dropout after a resume.
    return data_loader(SeededAugmentation(files, seed, epoch), batch_size=batch_size, sampler=indices,
                       num_workers=workers, pin_memory=device.type == "cuda",
                       generator=torch.Generator().manual_seed(derived_seed(seed, epoch)),
                       prefetch_factor=4 if workers else None, collate_fn=collate_fn)
