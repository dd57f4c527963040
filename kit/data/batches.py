"""Batches sliced from tensors that live on one device: the path for small data.

Titanic's table or MNIST's 42k digits fit in device memory many times over; keeping them
there and slicing batches by index skips the loader, the collate and the host-to-device
copy of every step (`train.device_data = true`).

    batches = TensorBatches({"x": x, "y": y}, 128, shuffle=True, seed=0, device="cuda")
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for batch in batches: ...

The order depends only on (seed, epoch). Under DDP every rank takes every world_size-th
row of the epoch's order, padded with the order's first rows (as DistributedSampler does),
so all ranks yield the same number of batches; predictions gathered across ranks drop the
repeats by their `index`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from kit.runtime import distributed as dist


def target_array(y) -> np.ndarray:
    """Labels as a loader yields them: int64 class indices, or float32 regression targets."""
    y = np.asarray(y)
    return y.astype(np.float32) if y.dtype.kind == "f" else y.astype(np.int64)


class TensorBatches:
    """Shuffled dict batches of equal-length tensors held on `device`.

    Each batch holds every tensor's rows plus "index" (0..N-1 unless given: pass global
    row positions to map predictions back). Subclasses finish a batch in `finish`
    (e.g. uint8 pixels to normalized floats plus augmentation)."""

    def __init__(self, tensors: dict, batch_size: int, *, shuffle: bool, seed: int, device,
                 drop_last: bool = False, rank: int | None = None, world_size: int | None = None):
        self.device = torch.device(device)
        self.tensors = {k: torch.tensor(np.asarray(v), device=self.device)  # a copy: owned, writable
                        for k, v in tensors.items() if v is not None}
        lengths = {k: len(v) for k, v in self.tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"TensorBatches needs tensors of one length, got {lengths}")
        self.n = next(iter(lengths.values()))
        self.tensors.setdefault("index", torch.arange(self.n, device=self.device))
        self.tensors["index"] = self.tensors["index"].to(torch.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        here = dist.info()  # rank / world_size given explicitly only in tests
        self.rank = here.rank if rank is None else rank
        self.world = here.world_size if world_size is None else world_size
        self.per_rank = math.ceil(self.n / self.world)
        self.drop_last = drop_last and self.per_rank > batch_size
        self.epoch, self._explicit = 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._explicit = epoch, True

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def finish(self, batch: dict, generator: torch.Generator) -> dict:
        return batch

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        if self.world > 1:
            pad = self.per_rank * self.world - self.n
            order = torch.cat([order, order[:pad]])[self.rank::self.world]
        return order.to(self.device)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if not self._explicit:  # without set_epoch each new pass advances the epoch
            self.epoch += 1
        self._explicit = False
        order = self._order(gen)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.finish({k: v[idx] for k, v in self.tensors.items()}, gen)
