"""Fold-safe features: columns that use labels, fitted inside each fold so no row sees its own.

A fold feature is a function `fn(fit, frame) -> DataFrame`: `fit` holds rows whose labels
may be used (the target column included), `frame` the rows to compute columns for, without
the target; it returns only the new columns, for exactly `frame`'s rows in `frame`'s order
(its index). Two sources: `fold_features(fit, frame)` in a competition's features.py (group
survival rates, anything label-derived) and `features.target_encode` in config
(scikit-learn's TargetEncoder: smoothed, multiclass and regression aware).

The kit, not the function, guarantees that no row sees its own label:
- a fold's validation rows and the test rows get columns fitted on the fold's training rows;
- the fold's training rows get theirs by an inner K-fold over those rows: each inner
  held-out part fitted on the other parts, so a training row's column never used its label
  (leave-one-out is not enough: on a low-cardinality column (S - y_i) / (n - 1) gives the
  label away, as the CatBoost paper shows). With cv.group the inner split keeps a group
  on one side too, as the outer one does: a group's rate made from a row's group-mates
  would otherwise carry their labels, which the outer folds keep apart, into its column.
  Under cv.strategy = "time" the inner split is in time order too: each held-out block is
  fitted on the earlier blocks alone, so no column sees a later row's label; the first block
  has no past and gets missing values (NaN), as an expanding mean has at the start.

    fns = fold_functions(cfg, features_hook)
    train_cols, test_cols = fit_fold_columns(fns, train, fit_rows, valid_rows, test,
                                             target="Survived", n_inner=5, seed=42,
                                             groups=None, stratify=False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold

from kit.errors import DataError
from kit.splits.time import time_codes, valid_starts

FoldFn = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


def target_encoder(columns: Sequence[str], target: str, problem: str, seed: int) -> FoldFn:
    """features.target_encode as a fold feature: te_<column> (te_<column>_<class> for more
    than two classes), scikit-learn's TargetEncoder fitted on `fit` alone."""
    from sklearn.preprocessing import TargetEncoder

    target_type = "continuous" if problem == "regression" else "auto"

    def encode(fit: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
        encoder = TargetEncoder(target_type=target_type, random_state=seed)
        encoder.fit(fit[list(columns)].astype(str), fit[target])
        values = encoder.transform(frame[list(columns)].astype(str))
        names = [f"te_{name}" for name in encoder.get_feature_names_out()]
        return pd.DataFrame(values, index=frame.index, columns=names)

    encode.__name__ = "features.target_encode"
    return encode


def fold_functions(cfg, hook: FoldFn | None) -> list[FoldFn]:
    fns = [hook] if hook is not None else []
    if cfg.features.target_encode:
        fns.append(target_encoder(cfg.features.target_encode, cfg.data.target,
                                  cfg.competition.problem, cfg.cv.seed))
    return fns


def apply(fns: Sequence[FoldFn], fit: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Every function's columns for `frame`, fitted on `fit`; checked to keep frame's rows."""
    parts = []
    for fn in fns:
        out = fn(fit, frame)
        if isinstance(out, pd.Series):
            out = out.to_frame()
        name = getattr(fn, "__name__", "fold_features")
        if not isinstance(out, pd.DataFrame) or len(out) != len(frame) or \
                not out.index.equals(frame.index):
            got = f"{len(out)} rows" if hasattr(out, "__len__") else type(out).__name__
            raise DataError(
                f"features.py {name}() returned {got} for the {len(frame)} rows it was given, "
                "or changed their order; return a DataFrame of the new columns with the "
                "given frame's index (out = pd.DataFrame(index=frame.index))")
        parts.append(out)
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)


def fit_fold_columns(fns: Sequence[FoldFn], train: pd.DataFrame, fit_rows: np.ndarray,
                     valid_rows: np.ndarray, test: pd.DataFrame, *, target: str, n_inner: int,
                     seed: int, groups: np.ndarray | None = None, stratify: bool = False,
                     times: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(columns for the fit and validation rows, indexed by train row position; columns for
    the test rows, by test row position). The functions see test rows indexed after the
    train rows (len(train) + position), so an index names one row across both files.
    `groups` (one per fit row) keeps each group in one inner part; `stratify` balances the
    target's classes over the inner parts as well (cv.strategy = "stratified_group").
    `times` (cv.time per train row, a time split) orders the inner split in time; a fit row
    past them (extra_train_rows) counts as the earliest."""
    fit = train.iloc[fit_rows]
    valid_cols = apply(fns, fit, train.iloc[valid_rows].drop(columns=target)) if \
        len(valid_rows) else None  # none: a refit on all rows (kit/tasks/tabular/refit.py)
    shifted = test.drop(columns=target, errors="ignore").set_axis(len(train) + np.arange(len(test)))
    test_cols = apply(fns, fit, shifted).set_axis(np.arange(len(test)))
    labels = fit[target].to_numpy() if stratify else None
    splits = inner_split(len(fit_rows), n_inner, seed, groups, labels) if times is None else \
        time_inner_split(_fit_order(times, fit_rows), n_inner, groups)
    parts = [apply(fns, fit.iloc[part_fit], fit.iloc[held].drop(columns=target))
             for part_fit, held in splits]
    fit_cols = pd.concat(parts).reindex(fit.index)  # NaN: a time split's first inner block
    return pd.concat([fit_cols, valid_cols]) if valid_cols is not None else fit_cols, test_cols


def _fit_order(times: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Each fit row's timestamp rank; -1 (first) for a row past `times` (extra_train_rows)."""
    order = np.full(len(fit_rows), -1, dtype=np.int64)
    known = fit_rows < len(times)
    order[known] = time_codes(times)[fit_rows[known]]
    return order


def time_inner_split(order: np.ndarray, n_inner: int, groups: np.ndarray | None = None):
    """(fit, held-out) positions in time order: n_inner + 1 blocks as the outer time split
    makes them (ties kept together, a group at its first timestamp), each block after the
    first held out and fitted on the blocks before it."""
    codes = time_codes(order, groups)
    starts = np.unique(valid_starts(codes, min(n_inner, len(codes) - 1)))
    starts = starts[starts > 0]  # a block with no earlier rows has nothing to fit on
    if not len(starts):
        raise DataError("a fold's training rows hold one timestamp of cv.time, and its fold "
                        "features need two for the time-ordered inner split; lower "
                        "cv.n_splits or drop the fold features (features.target_encode, "
                        "features.fold_hook = false)")
    ends = np.append(starts[1:], codes.max() + 1)
    return [(np.flatnonzero(codes < start), np.flatnonzero((codes >= start) & (codes < end)))
            for start, end in zip(starts, ends, strict=True)]


def inner_split(n_rows: int, n_inner: int, seed: int, groups: np.ndarray | None = None,
                labels: np.ndarray | None = None):
    """(fit, held-out) positions of the inner K-fold over a fold's n_rows training rows:
    scikit-learn's KFold, or with groups GroupKFold / StratifiedGroupKFold (with labels),
    the splitters kit/splits/folds.py uses for the outer folds."""
    x = np.zeros(n_rows)
    if groups is None:
        return KFold(min(n_inner, n_rows), shuffle=True, random_state=seed).split(x)
    n_groups = len(pd.unique(groups))
    if n_groups < 2:
        raise DataError(f"a fold's training rows hold {n_groups} group(s) of cv.group, and its "
                        "fold features need 2 for the inner K-fold; give cv.group a column "
                        "with more groups, or drop the fold features (features.target_encode, "
                        "features.fold_hook = false)")
    if labels is not None:
        return StratifiedGroupKFold(min(n_inner, n_groups), shuffle=True,
                                    random_state=seed).split(x, labels, groups)
    return GroupKFold(min(n_inner, n_groups), shuffle=True, random_state=seed).split(
        x, groups=groups)
