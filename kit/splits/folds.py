"""Fold assignment: one seeded column per repeat, persisted as folds.csv, checked for leaks.

The fold contract: a split is a function of the training ids, the target, the groups and
[cv] (strategy, n_splits, seed, repeats, bins) and of nothing else; not the feature
columns, not the model, not the row order of train.csv. Runs with other features.py or
models get the same split, so their OOF predictions can be blended. Repeat r shuffles
with seed cv.seed + r. The split itself is scikit-learn's. Groups (one person's seven
photos, one family's tickets) never straddle train and valid: `check_folds` asserts it.
A time split (cv.strategy = "time", kit/splits/time.py) is a function of the ids, the target,
the groups, cv.time's values and (n_splits, time, gap); its fits train on earlier rows only.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from kit.config import CVConfig
from kit.errors import DataError


@dataclass(frozen=True)
class Split:
    """A run's split (folds.csv). `folds` (N, repeats): the fold (0..n_splits-1) that
    validates each row in each repeat, -1 where no fit does (a time split's first block).
    `train_from`: None where fold fit k trains on every row it does not validate; a time
    split's first fit (0..n_splits-1, n_splits: none) whose training rows hold the row:
    fit k trains on the rows with train_from <= k (expanding windows nest)."""

    folds: np.ndarray
    train_from: np.ndarray | None = None


def make_folds(y: np.ndarray, cv: CVConfig, groups: np.ndarray | None = None, *,
               problem: str = "classification") -> np.ndarray:
    """Return the fold index (0..n_splits-1) of every row.

    A regression stratifies on `cv.bins` quantile bins of its target (a skewed target
    then has its tail in every fold).

    >>> make_folds(np.array([0, 1] * 10), CVConfig(n_splits=5, seed=0))
    array([1, 1, 4, 2, 2, 0, 4, 1, 0, 4, 3, 4, 3, 0, 1, 3, 0, 3, 2, 2])
    """
    n = len(y)
    if cv.n_splits > n:
        raise DataError(f"cv.n_splits = {cv.n_splits} but the training data has {n} rows")
    if np.ndim(y) == 2 and cv.strategy in ("stratified", "stratified_group"):
        return multilabel_folds(y, cv, problem=problem)
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


def multilabel_folds(labels: np.ndarray, cv: CVConfig, *,
                     problem: str = "classification") -> np.ndarray:
    """Folds stratified on several columns at once (cv.stratify_on; a run with several
    targets): iterstrat's MultilabelStratifiedKFold (Sechidis et al.'s iterative
    stratification) on one indicator per class of each column, or per quantile bin of each
    column under a regression; a column with a class rarer than cv.n_splits is refused."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    if cv.strategy == "stratified_group":
        raise DataError("cv.strategy = \"stratified_group\" stratifies on one column; with "
                        f"{labels.shape[1]} columns in cv.stratify_on use cv.strategy = "
                        "\"group\" (groups kept whole, not stratified)")
    indicators = []
    for j, column in enumerate(np.asarray(labels).T):
        codes = quantile_bins(column, cv.bins, cv.n_splits) if problem == "regression" else \
            np.unique(column, return_inverse=True)[1]
        counts = np.bincount(codes)
        if problem != "regression" and counts.min() < cv.n_splits:
            raise DataError(f"cv.stratify_on column {j}: its rarest class has {counts.min()} "
                            f"rows, fewer than cv.n_splits = {cv.n_splits}; lower cv.n_splits "
                            "or use cv.strategy = \"kfold\"")
        indicators.append(np.eye(len(counts), dtype=np.int8)[codes])
    splitter = MultilabelStratifiedKFold(cv.n_splits, shuffle=True, random_state=cv.seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(labels)), np.hstack(indicators))):
        folds[valid] = k
    check_folds(folds, cv.n_splits)
    return folds


def make_split(ids: np.ndarray, y: np.ndarray, cv: CVConfig, groups: np.ndarray | None = None,
               *, problem: str = "classification") -> np.ndarray:
    """(N, cv.repeats) fold index of every row in each repeat, in the rows' given order.

    The rows are split in the order of their ids, so reordering train.csv (or a features.py
    that reorders rows) keeps every id in its fold.
    """
    if cv.strategy == "hash":  # row-local: the out-of-core path's folds, here in memory
        keys = ids if groups is None else groups
        return np.stack([hash_folds(keys, cv.n_splits, cv.seed + r) for r in range(cv.repeats)],
                        axis=1)
    order = _id_order(ids)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    columns = []
    for r in range(cv.repeats):
        seeded = dataclasses.replace(cv, seed=cv.seed + r)
        folds = make_folds(y[order], seeded, None if groups is None else groups[order],
                           problem=problem)
        columns.append(folds[back])
    return np.stack(columns, axis=1)


def split_key(ids: np.ndarray, y: np.ndarray, cv: CVConfig, groups: np.ndarray | None = None,
              *, problem: str = "classification", times: np.ndarray | None = None) -> str:
    """The split's hash: everything a split depends on (see the module doc), and nothing else.
    Runs whose key matches share one stored split (kit/run_folder/ `shared_split`)."""
    order = _id_order(ids)
    h = hashlib.sha256()
    labels = np.asarray(y)[order]
    for part in (pd.Series(ids).astype(str).to_numpy()[order],
                 *(labels.T if labels.ndim == 2 else [labels]),  # every column of cv.stratify_on
                 None if groups is None else pd.Series(groups).astype(str).to_numpy()[order]):
        h.update(pd.util.hash_array(np.asarray(part, dtype=object)).tobytes()
                 if part is not None else b"-")
    settings = (cv.strategy, cv.n_splits, cv.seed, cv.repeats, problem,
                cv.bins if problem == "regression" else 0)
    if cv.strategy == "time":  # no seed, no bins: the order of cv.time's values decides
        h.update(np.asarray(times)[order].view(np.int64).tobytes())  # float64 / datetime64[ns]
        settings = (cv.strategy, cv.n_splits, problem, cv.time, cv.gap)
    h.update(repr(settings).encode())
    return h.hexdigest()[:12]


def fold_rows(split: Split, fold: int, n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of fold fit `fold`: repeat fold // n_splits, fold
    fold % n_splits of that repeat's column of the split; a time split's fit trains on the
    rows its train_from admits."""
    repeat, k = divmod(fold, n_splits)
    column = split.folds[:, repeat]
    if split.train_from is None:
        return np.flatnonzero(column != k), np.flatnonzero(column == k)
    return np.flatnonzero(split.train_from <= k), np.flatnonzero(column == k)


def _id_order(ids: np.ndarray) -> np.ndarray:
    ids = pd.Series(ids)
    try:
        return np.argsort(ids.to_numpy(), kind="stable")
    except TypeError:  # mixed types: compare as text
        return np.argsort(ids.astype(str).to_numpy(), kind="stable")


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


def hash_folds(keys, n_splits: int, seed: int = 42) -> np.ndarray:
    """Fold ids (0..n_splits-1) from a stable hash of each row's id, or group id under group
    folds, for tables streamed batch by batch: a row's fold depends on its own key only,
    so any batch is assigned without the rest of the table.

    Where it differs from make_folds' contract: it is a function of the keys and
    (n_splits, seed) alone, so it stays the same whatever the rows' order, but it does not
    stratify: the classes' (or the target's) share per fold is only as even as a random
    split of that many rows, and fold sizes vary by about sqrt(N / n_splits). Repeat r
    uses seed + r. fold_balance() reports what came out.
    """
    key = hashlib.blake2b(str(seed).encode(), digest_size=8).hexdigest()[:16]
    hashed = pd.util.hash_array(_as_keys(keys), hash_key=key, categorize=False)
    return (hashed % np.uint64(n_splits)).astype(np.int64)


def _as_keys(keys) -> np.ndarray:
    """Keys hashed by value: 7, 7.0 and "7" are one id, as the CSV may spell it either way."""
    values = pd.Series(np.asarray(keys))
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    return values.astype(str).to_numpy(dtype=object)


def fold_balance(folds: np.ndarray, y: np.ndarray, n_splits: int, *,
                 problem: str = "classification") -> pd.DataFrame:
    """Per fold: its rows, and each class's share (classification) or the target mean."""
    frame = pd.DataFrame({"fold": folds, "y": y})
    grouped = frame.groupby("fold")["y"]
    if problem == "regression":
        table = pd.DataFrame({"rows": grouped.size(), "target_mean": grouped.mean()})
    else:
        table = pd.crosstab(frame["fold"], frame["y"], normalize="index").add_prefix("share_")
        table.insert(0, "rows", grouped.size())
    return table.reindex(range(n_splits), fill_value=0)
