"""Image -> uint8 tensor at the model's input size, the same way for extraction, training and prediction.

The tensors stay uint8 until they reach the device (4x less to copy between processes); the model divides
by 255 and normalises itself (engine.models.Normalize).
"""

from __future__ import annotations

import os

import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode

from engine.images import ImageProblem, load_rgb


def eval_transform(img, prep: dict) -> torch.Tensor:
    """Resize the shorter side, center-crop, to a uint8 CHW tensor."""
    interp = InterpolationMode(prep.get("interpolation", "bilinear"))
    img = TF.resize(img, prep["resize_size"], interpolation=interp, antialias=True)
    img = TF.center_crop(img, [prep["crop_size"], prep["crop_size"]])
    return TF.pil_to_tensor(img)


def load_for_model(path: str | os.PathLike, prep: dict) -> torch.Tensor:
    """One file as the model sees it; raises ImageProblem for an unusable file."""
    return eval_transform(load_rgb(path, min_size=prep["resize_size"]), prep)


class ImageFiles(Dataset):
    """Files -> (uint8 tensor, index, error). A bad file yields a blank image and its reason, so one broken
    file never kills a DataLoader worker; the caller drops it and lists it."""

    def __init__(self, paths: list[str], prep: dict, transform=None):
        self.paths = paths
        self.prep = prep
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        size = self.prep["crop_size"]
        try:
            img = load_rgb(self.paths[i], min_size=self.prep["resize_size"])
            x = self.transform(img) if self.transform is not None else eval_transform(img, self.prep)
            return x, i, ""
        except ImageProblem as err:
            return torch.zeros(3, size, size, dtype=torch.uint8), i, str(err)
        except Exception as err:  # noqa: BLE001 - any decoder failure is a property of the file
            return torch.zeros(3, size, size, dtype=torch.uint8), i, f"cannot decode ({type(err).__name__}: {err})"


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


def forked_worker_init(_worker_id: int) -> None:
    """Runs first in every DataLoader worker process.

    A worker forked from a ThreadPoolExecutor thread (the workbench runs jobs on Textual's thread workers,
    which are the event loop's executor) inherits concurrent.futures' exit hook, which joins every pool
    thread, itself included: "cannot join current thread", and the worker exits with code 1 after its work.
    Those threads are not in this process; forget them.
    """
    import concurrent.futures.thread as pool_threads

    pool_threads._threads_queues.clear()


def data_loader(dataset: Dataset, **kwargs) -> DataLoader:
    """torch's DataLoader with the worker set-up every engine loader needs (see forked_worker_init)."""
    if kwargs.get("num_workers"):
        kwargs.setdefault("worker_init_fn", forked_worker_init)
    return DataLoader(dataset, **kwargs)
