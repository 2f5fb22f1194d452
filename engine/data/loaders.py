"""Image -> uint8 tensor at the model's input size, the same way for extraction, training and prediction.

The tensors stay uint8 until they reach the device (4x less to copy between processes); the model divides
by 255 and normalises itself (engine.models.classifier.Normalize).

Model inputs are decoded at full resolution: a JPEG decoded at reduced size (PIL's draft mode) differs
from the full image resized (the DCT-domain scaling filters differently, and a partial 8x8 block at the edge
shifts the geometry by up to a pixel of the reduced image: 7 grey levels on average, up to 103, for a
1024 px photo at 64 px). An exported model, given the full image, could never reproduce that.

The resize and crop are one function, `resize_center_crop`, on uint8 tensors: tlbench's own eval transform
(extraction, validation, evaluation, predict, attacks) runs it, and the exported models (engine.serve.export)
embed it, so both compute the same pixels. Its antialiased uint8 resize is torch's port of PIL's (they
differ by one grey level on about 0.1% of pixels) and about 10x faster than PIL's here.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset

from engine.core.records import Preprocessing
from engine.data.images import ImageProblem, load_rgb


def resize_center_crop(images: torch.Tensor, resize_size: int, crop_size: int,
                       mode: str = "bilinear") -> torch.Tensor:
    """uint8 images [N, 3, H, W] -> uint8 [N, 3, crop_size, crop_size]: torchvision's Resize(resize_size)
    (the shorter side becomes resize_size, the longer int(resize_size * long / short); antialiased, PIL's
    filters on uint8 values) then CenterCrop(crop_size), with its offsets.

    Written to be compiled by TorchScript and traced by torch.export with symbolic image sizes: exports embed
    it (engine.serve.export). `mode` is "bilinear" or "bicubic". Runs on the CPU (torch's antialiased uint8
    resize is a CPU kernel).
    """
    h, w = images.shape[-2], images.shape[-1]
    # torch.jit.is_scripting is public API that torch.jit's __all__ leaves out
    if torch.jit.is_scripting():  # pyright: ignore[reportPrivateImportUsage]
        short: int = min(h, w)
    else:
        # min() of symbolic sizes would fix them when exported. A SymInt while torch.export traces (the
        # stubs' IntLikeType, which F.interpolate's stub does not list though it takes it), an int otherwise.
        short = torch.sym_min(h, w)  # pyright: ignore[reportAssignmentType]
    new_h = (resize_size * h) // short
    new_w = (resize_size * w) // short
    x = F.interpolate(images, size=(new_h, new_w), mode=mode, align_corners=False, antialias=True)
    # the crop as index_select on crop_size indices: its size stays a constant for the exporter (a narrow()
    # at a symbolic offset leaves it symbolic, and tracing a backbone then drowns in shape algebra)
    window = torch.arange(crop_size, device=x.device)
    x = x.index_select(2, window + _center_offset(new_h - crop_size))
    return x.index_select(3, window + _center_offset(new_w - crop_size))


def _center_offset(extra: int) -> int:
    """torchvision's center-crop offset int(round(extra / 2)) (round half to even), in integer arithmetic so
    that it also works on symbolic sizes."""
    half = extra // 2
    return half + (extra % 2) * (half % 2)


def eval_transform(img, prep: Preprocessing) -> torch.Tensor:
    """A PIL image -> uint8 CHW tensor: resize the shorter side, center-crop (`resize_center_crop`)."""
    x = TF.pil_to_tensor(img).unsqueeze(0)
    return resize_center_crop(x, prep.resize_size, prep.crop_size, prep.resize_mode)[0]


def load_for_model(path: str | os.PathLike, prep: Preprocessing) -> torch.Tensor:
    """One file as the model sees it (decoded in full, see above); raises ImageProblem for an unusable one."""
    return eval_transform(load_rgb(path), prep)


class ImageFiles(Dataset):
    """Files -> (uint8 tensor, index, error). A bad file yields a blank image and its reason, so one broken
    file never kills a DataLoader worker; the caller drops it and lists it."""

    def __init__(self, paths: list[str], prep: Preprocessing, transform=None):
        self.paths = paths
        self.prep = prep
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        size = self.prep.crop_size
        try:
            img = load_rgb(self.paths[i])  # in full: see the module's docstring
            x = self.transform(img) if self.transform is not None else eval_transform(img, self.prep)
            return x, i, ""
        except ImageProblem as err:
            return torch.zeros(3, size, size, dtype=torch.uint8, device="cpu"), i, str(err)
        except Exception as err:  # noqa: BLE001 - any decoder failure is a property of the file
            blank = torch.zeros(3, size, size, dtype=torch.uint8, device="cpu")
            return blank, i, f"cannot decode ({type(err).__name__}: {err})"


def auto_workers(device: torch.device) -> int:
    """DataLoader workers: decoding overlaps the forward pass, without starving the compute threads.

    On a CPU device the workers and the model share the cores, so use about a quarter of them (at least 1);
    on a GPU the CPU only decodes, so use most of them.
    """
    cores = os.cpu_count() or 1
    if cores <= 1:
        return 0
    if device.type == "cpu":
        return max(1, cores // 4)
    return min(8, cores - 1)


def training_workers(device: torch.device, requested: int | None, decoded_cache: bool) -> int:
    """The fine-tuning loaders' workers: `requested` (--workers) when given; on a CPU device reading the
    decoded-image cache, none; else auto_workers.

    Why none: a training loader is made anew every epoch (its augmentation is seeded per epoch), so each epoch
    pays its workers' start-up and every batch crosses processes, while a stored image costs ~0.3 ms to crop
    and flip in place. On the 2-core CPU a head fine-tune at 64 px ran 590 images/s with no worker against 330
    with one (bench/loader.py). A GPU keeps its workers: there the CPU's work overlaps the device's."""
    if requested is not None:
        return requested
    if decoded_cache and device.type == "cpu":
        return 0
    return auto_workers(device)


def forked_worker_init(_worker_id: int) -> None:
    """Runs first in every DataLoader worker process.

    A worker forked from a ThreadPoolExecutor thread (the workbench runs jobs on Textual's thread workers,
    which are the event loop's executor) inherits concurrent.futures' exit hook, which joins every pool
    thread, itself included: "cannot join current thread", and the worker exits with code 1 after its work.
    Those threads are not in this process; forget them.
    """
    import concurrent.futures.thread as pool_threads

    # a WeakKeyDictionary at run time; the stubs type it as a read-only Mapping
    pool_threads._threads_queues.clear()  # pyright: ignore[reportAttributeAccessIssue]


def data_loader(dataset: Dataset, **kwargs) -> DataLoader:
    """torch's DataLoader with the worker set-up every engine loader needs (see forked_worker_init)."""
    if kwargs.get("num_workers"):
        kwargs.setdefault("worker_init_fn", forked_worker_init)
    return DataLoader(dataset, **kwargs)
