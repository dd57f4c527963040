"""Seeding and the determinism switch.

Same seed -> same folds, same initial weights, same batch order, same augmentations.
DataLoader workers get their own derived seeds (numpy's global RNG is otherwise copied
into every worker, so augmentations repeat across workers).
"""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Seed python and numpy in a DataLoader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32  # differs per worker and per epoch
    random.seed(seed)
    np.random.seed(seed)


def set_deterministic(on: bool) -> None:
    """Deterministic algorithms; CUBLAS_WORKSPACE_CONFIG must be set before CUDA starts."""
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # warn_only: ops without a deterministic implementation warn and name themselves instead of
    # crashing a long run; the warning is the list of non-deterministic ops.
    torch.use_deterministic_algorithms(True, warn_only=True)
    warnings.filterwarnings("always", message=".*does not have a deterministic implementation.*")
