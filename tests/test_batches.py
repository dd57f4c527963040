"""TensorBatches: device-resident batches, their epochs and their DDP shards."""

import numpy as np
import pytest
import torch

from kit.data.batches import TensorBatches


def indices(batches) -> list[int]:
    return torch.cat([b["index"] for b in batches]).tolist()


@pytest.mark.parametrize("n, world, batch", [(10, 1, 4), (10, 3, 2), (7, 2, 3), (3, 3, 8)])
def test_ranks_cover_every_row_and_yield_the_same_number_of_batches(n, world, batch):
    shards = [TensorBatches({"x": np.arange(n) * 10}, batch, shuffle=True, seed=1, device="cpu",
                            rank=r, world_size=world) for r in range(world)]
    for s in shards:
        s.set_epoch(4)
    seen = [indices(s) for s in shards]
    assert len({len(s) for s in shards}) == 1 and len({len(s) for s in seen}) == 1
    everything = sum(seen, [])
    assert sorted(set(everything)) == list(range(n))  # nothing lost
    assert len(everything) - n == (-n) % world  # only the padding repeats rows
    for s in shards:
        for b in s:
            assert torch.equal(b["x"], b["index"] * 10)  # rows stay aligned across tensors


def test_order_depends_on_seed_and_epoch_only():
    def order(seed, epoch):
        b = TensorBatches({"x": np.zeros((20, 3), np.float32)}, 6, shuffle=True, seed=seed,
                          device="cpu")
        b.set_epoch(epoch)
        return indices(b)

    assert order(0, 2) == order(0, 2)
    assert order(0, 2) != order(0, 3) and order(0, 2) != order(1, 2)
    assert sorted(order(0, 2)) == list(range(20))


def test_drop_last_and_given_index():
    b = TensorBatches({"y": np.arange(10), "index": np.arange(100, 110)}, 4, shuffle=False,
                      seed=0, device="cpu", drop_last=True)
    assert len(b) == 2 and indices(b) == list(range(100, 108))
    assert len(TensorBatches({"y": np.arange(3)}, 4, shuffle=True, seed=0, device="cpu",
                             drop_last=True)) == 1  # fewer rows than a batch: keep them


def test_tensors_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one length"):
        TensorBatches({"x": np.zeros(3), "y": np.zeros(4)}, 2, shuffle=False, seed=0, device="cpu")
