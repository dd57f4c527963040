"""Hill climbing: Caruana-style ensemble selection over many members' OOF predictions.

Caruana et al., "Ensemble Selection from Libraries of Models" (ICML 2004): start from the
best member, then greedily add, with replacement, the member that most improves the
objective; stop when nothing improves or after `max_steps`. The weights are the selection
counts, normalized: non-negative, summing to 1, and sparse (members never picked get 0).

With `negative_weights` each step instead searches a grid of weights w for every member m
and moves the blend to (1 - w) * blend + w * member_m (as the `hillclimbers` package does):
the weights still sum to 1 but may be negative, which can cancel a shared error.

The arithmetic is plain: members arrive in the blend's space (probabilities, or a
regression metric's space) with the loss to minimise; kit/blending.py supplies both.

    weights = hill_climb(z, loss, max_steps=50)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

GRID = np.round(np.arange(-0.5, 0.51, 0.05), 2)  # negative_weights: step sizes tried per member


def hill_climb(z: np.ndarray, loss: Callable[[np.ndarray], float], *, max_steps: int = 100,
               negative_weights: bool = False) -> np.ndarray:
    """Weights (M,) for members `z` (M, N, C) that greedily minimise `loss(blend)`."""
    scores = [loss(member) for member in z]
    best = int(np.argmin(scores))
    weights = np.zeros(len(z))
    weights[best] = 1.0
    blend, current = z[best].copy(), scores[best]
    counts = weights.copy()
    for _ in range(max_steps):
        if negative_weights:
            step = _best_grid_step(z, blend, loss)
        else:  # add one more copy of a member: blend = (n * blend + member) / (n + 1)
            n = counts.sum()
            step = min(((loss((n * blend + member) / (n + 1)), m, 1 / (n + 1))
                        for m, member in enumerate(z)), key=lambda t: t[0])
        score, m, w = step
        if not score < current - 1e-12:
            break
        blend, current = (1 - w) * blend + w * z[m], score
        if negative_weights:
            weights *= 1 - w
            weights[m] += w
        else:
            counts[m] += 1
            weights = counts / counts.sum()
    return weights


def _best_grid_step(z: np.ndarray, blend: np.ndarray, loss) -> tuple[float, int, float]:
    return min(((loss((1 - w) * blend + w * member), m, float(w))
                for m, member in enumerate(z) for w in GRID if w != 0), key=lambda t: t[0])
