"""DDP through torch.distributed, started by torchrun; a no-op in a single process.

    torchrun --nproc_per_node=2 scripts/train.py --comp titanic

`init()` joins the process group torchrun describes in the environment (nccl on CUDA,
gloo on CPU). Every rank runs the same pipeline; rank 0 alone prints, logs and writes
files. Predictions are gathered from all ranks and de-duplicated by row position, so the
metric, early stopping and the OOF file are the same on every rank and hold each row once
(a DistributedSampler pads the last batch with repeated rows).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def info() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init(device_name: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1; returns this process's place."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return info()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return info()


def is_main() -> bool:
    return info().main


def barrier() -> None:
    if info().world_size > 1:
        dist.barrier()


def broadcast(obj):
    """Rank 0's value of a picklable object on every rank (e.g. the run folder name)."""
    if info().world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(proba: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ranks' predictions, each row position once, sorted by position."""
    if info().world_size == 1:
        return proba, index
    parts = [None] * info().world_size
    dist.all_gather_object(parts, (proba, index))
    proba = np.concatenate([p for p, _ in parts])
    index = np.concatenate([i for _, i in parts])
    index, first = np.unique(index, return_index=True)  # drops the sampler's padding
    return proba[first], index


def mean_across_ranks(value: float, device: torch.device) -> float:
    if info().world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info().world_size


def replicas_agree(model: torch.nn.Module) -> bool:
    """True when every rank holds the same weights (DDP keeps them in lockstep)."""
    if info().world_size == 1:
        return True
    digest = hashlib.sha1()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    parts = [None] * info().world_size
    dist.all_gather_object(parts, digest.hexdigest())
    return len(set(parts)) == 1


def sampler(dataset, *, shuffle: bool, seed: int, drop_last: bool = False):
    """A DistributedSampler for map-style datasets under DDP, else None (plain loader)."""
    if info().world_size == 1:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if info().world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
