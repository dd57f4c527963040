"""How a TabularStream deals its rows: units (row groups, or equal slices of them when
there are fewer groups than shards), dealt to the shard with the fewest rows, and the
batch quotas that give every DDP rank the same number of steps (kit/data/stream.py)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

Unit = tuple[int, int, int, int]  # (file index, row group, first row, end row) in that group


def make_units(group_rows: list[list[int]], n_shards: int) -> list[Unit]:
    """Row groups, each cut into equal slices when there are fewer groups than shards."""
    groups = [(f, g, n) for f, sizes in enumerate(group_rows) for g, n in enumerate(sizes) if n]
    pieces = max(1, math.ceil(n_shards / len(groups)))
    return [(f, g, n * i // k, n * (i + 1) // k)
            for f, g, n in groups for k in [min(pieces, n)] for i in range(k)]


def deal_units(sizes: list[int], order: Sequence[int], n_shards: int) -> list[list[int]]:
    """Give each unit, in `order`, to the shard with the fewest rows (ties: lowest index)."""
    heap, shards = [(0, s) for s in range(n_shards)], [[] for _ in range(n_shards)]
    for u in order:
        load, s = heapq.heappop(heap)
        shards[s].append(int(u))
        heapq.heappush(heap, (load + sizes[u], s))
    return shards


def batch_count(rows: int, batch_size: int, drop_last: bool) -> int:
    return rows // batch_size if drop_last else -(-rows // batch_size)


def batch_quotas(shard_rows: list[int], workers: int, batch_size: int, drop_last: bool,
            ddp_even: str) -> list[tuple[int, int]]:
    """(batches, of which padding) per shard, so that every rank yields the same count."""
    counts = [batch_count(r, batch_size, drop_last) for r in shard_rows]
    ranks = [counts[i:i + workers] for i in range(0, len(counts), workers)]
    target = (max if ddp_even == "pad" else min)(sum(r) for r in ranks)
    out = []
    for rank in ranks:
        gap = target - sum(rank)
        if gap >= 0:  # pad, spread evenly over the rank's workers
            pads = [gap // workers + (w < gap % workers) for w in range(workers)]
            out += [(c + p, p) for c, p in zip(rank, pads)]
            continue
        left = list(rank)
        for _ in range(-gap):  # drop, from the fullest worker first
            left[max(range(workers), key=left.__getitem__)] -= 1
        out += [(c, 0) for c in left]
    return out
