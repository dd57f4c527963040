"""Learning-rate schedule as a pure function of the optimizer step.

Linear warmup from 0 to `lr` over `warmup_steps`, reaching `lr` exactly at the end of
warmup, then a half cosine from `lr` down to `min_lr` at `total_steps`; never below
`min_lr` (a zero floor silently freezes the end of training, so it is warned about).
"""

from __future__ import annotations

import math
import warnings


def lr_at(step: int, *, lr: float, total_steps: int, warmup_steps: int, min_lr: float) -> float:
    """LR for optimizer step `step` (0-based).

    >>> lr_at(10, lr=1e-3, total_steps=100, warmup_steps=10, min_lr=1e-5)
    0.001
    """
    if warmup_steps > 0 and step < warmup_steps:
        # step+1 so the first step already learns and step warmup_steps-1 reaches lr.
        return max(lr * (step + 1) / warmup_steps, min_lr)
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warn_if_frozen(min_lr: float) -> None:
    if min_lr == 0:
        warnings.warn(
            "train.min_lr = 0: the last epochs of the cosine schedule train with LR ~0; "
            "set train.min_lr to about lr/100",
            stacklevel=2,
        )
