"""Fold assignment: one seeded column, persisted as folds.csv, checked for leaks.

Settings come from [cv]; the split itself is scikit-learn's. Groups (one person's seven
photos, one family's tickets) never straddle train and valid: `check_folds` asserts it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from kit.config import CVConfig
from kit.errors import DataError


def make_folds(y: np.ndarray, cv: CVConfig, groups: np.ndarray | None = None, *,
               problem: str = "classification") -> np.ndarray:
    """Return the fold index (0..n_splits-1) of every row.

    A regression stratifies on `cv.bins` quantile bins of its target (a skewed target
    then has its tail in every fold).

    >>> make_folds(np.array([0, 1] * 10), CVConfig(n_splits=5, seed=0))
    """
    n = len(y)
    if cv.n_splits > n:
        raise DataError(f"cv.n_splits = {cv.n_splits} but the training data has {n} rows")
    if problem == "regression" and cv.strategy in ("stratified", "stratified_group"):
        y = quantile_bins(y, cv.bins, cv.n_splits)
    if cv.strategy in ("stratified", "stratified_group"):
        counts = np.bincount(y)
        counts = counts[counts > 0]
        if counts.min() < cv.n_splits:
            raise DataError(
                f"cv.strategy = {cv.strategy!r}: the rarest class has {counts.min()} rows, fewer "
                f"than cv.n_splits = {cv.n_splits}; lower cv.n_splits or use strategy 'kfold'"
            )
    if cv.strategy in ("group", "stratified_group") and groups is None:
        raise DataError(f"cv.strategy = {cv.strategy!r} needs cv.group ({cv.group!r}) in the data")
    splitter = {
        "stratified": lambda: StratifiedKFold(cv.n_splits, shuffle=True, random_state=cv.seed),
        "kfold": lambda: KFold(cv.n_splits, shuffle=True, random_state=cv.seed),
        "group": lambda: GroupKFold(cv.n_splits, shuffle=True, random_state=cv.seed),
        "stratified_group": lambda: StratifiedGroupKFold(
            cv.n_splits, shuffle=True, random_state=cv.seed
        ),
    }[cv.strategy]()
    folds = np.full(n, -1, dtype=np.int64)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(n), y, groups)):
        folds[valid] = k
    check_folds(folds, cv.n_splits, groups)
    return folds


def quantile_bins(y: np.ndarray, bins: int, n_splits: int) -> np.ndarray:
    """Bin index of each value among `bins` equal-count bins; fewer bins when some would
    hold fewer than n_splits rows (ties, tiny data), so stratification stays possible."""
    y = np.asarray(y, dtype=np.float64)
    for k in range(min(bins, len(y) // n_splits), 1, -1):
        edges = np.unique(np.quantile(y, np.linspace(0, 1, k + 1)[1:-1]))
        # renumbered: ties at the minimum (a target that is 60 % zeros) leave bins empty
        codes = np.unique(np.searchsorted(edges, y, side="right"), return_inverse=True)[1]
        if np.bincount(codes).min() >= n_splits:
            return codes
    return np.zeros(len(y), dtype=np.int64)


def check_folds(folds: np.ndarray, n_splits: int, groups: np.ndarray | None = None) -> None:
    """Every row in exactly one fold, every fold non-empty, no group in two folds."""
    if (folds < 0).any() or (folds >= n_splits).any():
        raise DataError(f"fold column has values outside 0..{n_splits - 1}")
    sizes = np.bincount(folds, minlength=n_splits)
    if (sizes == 0).any():
        raise DataError(f"empty folds: {np.flatnonzero(sizes == 0).tolist()}")
    if groups is not None:
        spread = pd.Series(folds).groupby(pd.Series(groups)).agg(["min", "max"])
        leaked = spread[spread["min"] != spread["max"]]
        if len(leaked):
            g, row = leaked.index[0], leaked.iloc[0]
            raise DataError(f"group {getattr(g, 'item', lambda: g)()!r} appears in folds "
                            f"{row['min']} and {row['max']}: leak")
