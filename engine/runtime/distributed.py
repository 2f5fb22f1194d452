"""Multi-process training with torch.distributed, started by `torchrun` (or Slurm's srun + torchrun).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; when WORLD_SIZE > 1, `tlbench
train` joins the process group (NCCL on CUDA, gloo on CPU), wraps the model in DistributedDataParallel,
shards the data with DistributedSampler, reduces metrics across ranks, and lets rank 0 alone write the run
and log. `--batch-size` is per process: the global batch is batch_size x WORLD_SIZE.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from engine.runtime.devices import describe_device, device_type


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def env_info() -> DistInfo:
    """What torchrun's environment says (a single process when it says nothing)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun; a no-op for a single process."""
    info = env_info()
    if not info.enabled or (dist.is_available() and dist.is_initialized()):
        return info
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(minutes=30))
    return info


def join(choice: str) -> tuple[DistInfo, torch.device, str, str]:
    """(rank info, this process's device, its name, why it was chosen) for a --device choice.

    Under torchrun each rank selects its local GPU before anything names or touches one: a rank that asked
    for a GPU's name first would open a CUDA context on GPU 0 (every rank's, hundreds of MB each there)."""
    kind = device_type(choice)
    info = setup(kind)  # torch.cuda.set_device(local_rank) first, then the process group
    device = device_for(info, torch.device(kind))
    name, why = describe_device(choice, index=device.index)
    return info, device, name, why


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def device_for(info: DistInfo, device: torch.device) -> torch.device:
    """Each rank drives its own GPU on a node."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def all_sum(info: DistInfo, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of `values` across ranks (metric sums and counts). Reduced on `device` (NCCL reduces
    only there) in float32, never float64 (MPS has none, and a device float64 is slow everywhere else); whole
    numbers given as int (counts) are summed exactly in int64."""
    if not info.enabled:
        return list(values)
    out = list(values)
    ints = [i for i, v in enumerate(values) if isinstance(v, int)]
    floats = [i for i, v in enumerate(values) if not isinstance(v, int)]
    for idx, dtype in ((ints, torch.int64), (floats, torch.float32)):
        if idx:
            t = torch.tensor([values[i] for i in idx], dtype=dtype, device=device)
            dist.all_reduce(t)
            for i, v in zip(idx, t.tolist()):
                out[i] = v
    return out


def all_max_(info: DistInfo, t: torch.Tensor) -> torch.Tensor:
    """`t` replaced in place by its element-wise maximum across ranks: flags (any rank's stop or NaN) and
    values every rank must agree on, in one reduction."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` under torchrun (the model itself otherwise). DDP registers the
    parameters that require grad now: wrap again after changing which ones do (engine.train.finetune's phases),
    and unwrap the old wrapper first."""
    if not info.enabled:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(wrapped: torch.nn.Module) -> None:
    """Take a DDP wrapper's gradient hooks off the parameters now: they would otherwise stay registered
    (and the wrapper alive) for as long as anything still refers to it."""
    if isinstance(wrapped, DistributedDataParallel):
        wrapped._remove_autograd_hooks()  # private, but what DDP itself calls to detach its reducer


def broadcast(info: DistInfo, obj):
    """Rank 0's value of `obj` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(info: DistInfo, obj) -> list:
    """Every rank's `obj`, in rank order (on every rank)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
