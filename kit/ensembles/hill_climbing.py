"""Hill climbing: Caruana-style ensemble selection over many members' OOF predictions.

Caruana et al., "Ensemble Selection from Libraries of Models" (ICML 2004): start from the
best member, then greedily add, with replacement, the member that most improves the
objective; stop when nothing improves or after `max_steps`. The weights are the selection
counts, normalized: non-negative, summing to 1, and sparse (members never picked get 0).

With `negative_weights` each step instead searches a grid of weights w for every member m
and moves the blend to (1 - w) * blend + w * member_m (as the `hillclimbers` package does):
the weights still sum to 1 but may be negative, which can cancel a shared error.

Bagged selection (the same paper): with many members one greedy path overfits the OOF
rows it climbs on, so `bagged_hill_climb` can climb `bags` times, each time over a random
`bag_fraction` of the members, and average the bags' weights. It pulls the weights toward
equal: on House Prices' six kinds 20 bags of half the members scored 0.1257
cross-validated RMSLE against one climb's 0.1261, on Titanic's six 0.3441 log loss against
0.3428 (docs/ensembles.md, Measured: six kinds per competition), and a single strong
member among noise gets only the share of bags it is in.
So the default is one climb over all members.

The arithmetic is plain: members arrive in the blend's space (probabilities, or a
regression metric's space) with the loss to minimise; kit/ensembles/blend.py supplies both.

    weights = bagged_hill_climb(z, loss, HillSettings(max_steps=50))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GRID = np.round(np.arange(-0.5, 0.51, 0.05), 2)  # negative_weights: step sizes tried per member


@dataclass(frozen=True)
class HillSettings:
    """How hill climbing searches (scripts/ensemble.py's --max-steps, --negative-weights,
    --bags, --bag-fraction)."""

    max_steps: int = 100  # greedy steps per climb at most
    negative_weights: bool = False
    bags: int = 1  # climbs over random member subsets, averaged; 1 = one climb over all
    bag_fraction: float = 0.5  # share of the members each bag climbs over (2 at least)
    seed: int = 0  # which subsets: the same members and seed give the same weights


DEFAULT_HILL = HillSettings()


def bagged_hill_climb(z: np.ndarray, loss: Callable[[np.ndarray], float],
                      settings: HillSettings = DEFAULT_HILL) -> np.ndarray:
    """Weights (M,) averaged over `settings.bags` climbs, each over a random subset of the
    members `z` (M, N, C); one climb over all when the subset would be all of them."""
    size = max(2, round(settings.bag_fraction * len(z)))
    climb = dict(max_steps=settings.max_steps, negative_weights=settings.negative_weights)
    if settings.bags <= 1 or size >= len(z):
        return hill_climb(z, loss, **climb)
    rng, weights = np.random.default_rng(settings.seed), np.zeros(len(z))
    for _ in range(settings.bags):
        members = np.sort(rng.choice(len(z), size, replace=False))
        weights[members] += hill_climb(z[members], loss, **climb)
    return weights / settings.bags


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
