"""Fine-tuning on images: the head, partial and full modes, with checkpoints that resume exactly.

- head: the backbone frozen, in eval mode (its BatchNorm statistics never move), a new head trained on
  augmented images.
- partial: the backbone's last N stages (engine.models.stages) trained with the head; the frozen ones stay in eval.
- full: fastai's `fine_tune`: `freeze_epochs` epochs with the backbone frozen (one-cycle, pct_start 0.99),
  then everything unfrozen with discriminative learning rates (fastai's slice(lr/100, lr): the head at lr,
  the last stage at lr/10, down to lr/100 for the first) under a second one-cycle schedule at half the rate.

The loop is the plain one (torchvision's references): DataLoader workers decode uint8 images, the model
normalises on the device, autocast (engine.runtime.precision: bf16 or fp16 on CUDA by default, any precision when
asked) and channels_last (on CUDA and CPU by default). Each sample's augmentation has its own seed (seed,
epoch, sample), so it is the same with any number of workers or ranks and after a resume. Losses and
accuracy stay on the device and are read back only at sync points (StepMeter, SyncSchedule), not every
step. Every epoch ends with last.pt (and best.pt when the validation accuracy improves, ties broken by the
lower loss), holding model, optimizer, scheduler, scaler, RNG states (every rank's under torchrun) and where
the epoch stood; a stop (the workbench, Ctrl+C, SIGTERM, SIGHUP) saves last.pt at the step it reached.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from engine.data.loaders import ImageFiles, data_loader
from engine.runtime import distributed as D
from engine.runtime.seeding import derived_seed

if TYPE_CHECKING:
    pass


# ------------------------------------------------------------------------------------------------ data


def train_transform(preset: str, prep: dict):
    """PIL image -> uint8 tensor with the preset's augmentation (None: the eval transform)."""
    if preset == "none":
        return None
    from torchvision.transforms import InterpolationMode, v2

    size = prep["crop_size"]
    interp = InterpolationMode(prep.get("interpolation", "bilinear"))
    if preset == "light":
        return v2.Compose([v2.RandomResizedCrop(size, scale=(0.35, 1.0), interpolation=interp, antialias=True),
                           v2.RandomHorizontalFlip(), v2.PILToTensor()])
    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=interp, antialias=True),
                       v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(interpolation=interp), v2.PILToTensor(),
                       v2.RandomErasing(p=0.25)])


def epoch_indices(n: int, batch_size: int, seed: int, epoch: int, info: D.DistInfo) -> list[int]:
    """This rank's sample order for an epoch: DistributedSampler's (seeded by seed and epoch, the same with
    one process or many), without a last batch of one image (BatchNorm cannot train on it)."""
    sampler = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
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

    def __init__(self, files: ImageFiles, seed: int, epoch: int):
        self.files, self.seed, self.epoch = files, seed, epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        if self.files.transform is None:  # no augmentation: nothing random to seed
            return self.files[i]
        with torch.random.fork_rng(devices=[]):  # the CPU generator only; CUDA's is never touched here
            torch.default_generator.manual_seed(derived_seed(self.seed, self.epoch, i))
            return self.files[i]


def train_loader(files: ImageFiles, indices: list[int], batch_size: int, workers: int, device: torch.device,
                 seed: int, epoch: int) -> DataLoader:
    # The DataLoader draws its workers' base seed from `generator`, or else from the global RNG, which last.pt
    # restores: a resumed epoch creates its loader at another point of that RNG's sequence than the
    # uninterrupted run did, so drawing from it would shift dropout after a resume.
    return data_loader(SeededAugmentation(files, seed, epoch), batch_size=batch_size, sampler=indices,
                       num_workers=workers, pin_memory=device.type == "cuda",
                       generator=torch.Generator().manual_seed(derived_seed(seed, epoch)),
                       prefetch_factor=4 if workers else None)


# ------------------------------------------------------------------------------------------------ RNG


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as plain lists and tensors (weights_only can load them)."""
    version, state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": {"version": version, "state": torch.tensor(state, dtype=torch.int64, device="cpu"),
                   "gauss": gauss if gauss is not None else None},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------------ the loop

# A rank's own stream for dropout and stochastic depth: prepare() seeds every rank alike (they build the same
# model), then each draws its own numbers.
RANK_STREAM = 0x52414E4B

