"""Time-ordered CV (cv.strategy = "time"): expanding windows that never train on the future.

The layout is scikit-learn's TimeSeriesSplit(n_splits, gap=cv.gap), made for real tables:

- rows are ordered by cv.time (numbers, or anything pandas.to_datetime parses), never by
  their order in train.csv; with cv.group a group sits at its first timestamp (its rows are
  validated together and trained on together);
- fit k validates block k + 1 of n_splits + 1 blocks: TimeSeriesSplit's test starts (rows
  n - (n_splits - k) * (n // (n_splits + 1)) in time order), each moved back to the first row
  of its timestamp, so rows sharing a timestamp are never split across train and valid;
- fit k trains on the rows whose timestamp comes before its validation block's first
  timestamp by more than cv.gap distinct timestamps (cv.gap counts timestamps, not rows:
  a daily table's gap is in days with data);
- the first block trains only (fold -1): the OOF score covers the validated rows only.

On unique, sorted times every fit equals TimeSeriesSplit's (tests/test_time_cv.py). The
training sets nest (fit k's rows are all fit k + 1's), so one number per row stores them:
`train_from`, the first fit that trains on the row (folds.csv, kit/splits/folds.py `Split`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from kit.config import CVConfig
from kit.errors import DataError
from kit.splits.folds import Split


def read_times(frame: pd.DataFrame, cv: CVConfig, source: str) -> np.ndarray | None:
    """cv.time's parsed values for train's rows (float64 or datetime64[ns]); None unless
    cv.strategy = "time"."""
    if cv.strategy != "time":
        return None
    if cv.time not in frame.columns:
        raise DataError(f"{source}: cv.time = {cv.time!r} is not a column of train (it has "
                        f"{list(frame.columns)[:12]}); set cv.time to the column holding each "
                        "row's time (a features.py build() may make it)")
    return parse_times(frame[cv.time], f"{source}: cv.time = {cv.time!r}")


def parse_times(values: pd.Series, what: str) -> np.ndarray:
    """Numbers as float64, else dates as datetime64[ns] (UTC when they carry a zone);
    a missing value or one that parses as neither is a DataError naming its row."""
    values = values.reset_index(drop=True)
    if values.isna().any():
        row = int(np.flatnonzero(values.isna())[0])
        raise DataError(f"{what}: row {row} has no time; fill it or drop the row (a time "
                        "split orders every training row)")
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{what} holds booleans, not times; give a column of numbers or dates")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(np.float64)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(np.float64)
    with warnings.catch_warnings():  # "could not infer format": we check every value below
        warnings.simplefilter("ignore", UserWarning)
        dates = pd.to_datetime(values, errors="coerce", utc=_has_zone(values))
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna())[0])
        raise DataError(f"{what}: value {values.iloc[row]!r} (row {row}) parses neither as a "
                        "number nor as a date like 2024-01-31; fix that row or set cv.time to "
                        "a column of numbers or dates in one format")
    return dates.dt.tz_localize(None).to_numpy("datetime64[ns]") if dates.dt.tz else \
        dates.to_numpy("datetime64[ns]")


def _has_zone(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.DatetimeTZDtype)


def time_codes(times: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Each row's rank among the distinct timestamps (0 = earliest), a group's rows all at
    its first timestamp."""
    keys = pd.Series(np.asarray(times))
    if groups is not None:
        keys = keys.groupby(pd.factorize(groups)[0]).transform("min")
    return np.unique(keys.to_numpy(), return_inverse=True)[1].reshape(-1)


def valid_starts(codes: np.ndarray, n_splits: int) -> np.ndarray:
    """The timestamp code where each fit's validation block begins: TimeSeriesSplit's test
    start rows in time order, each moved back to the first row of its timestamp."""
    size = len(codes) // (n_splits + 1)
    return np.sort(codes)[len(codes) - size * np.arange(n_splits, 0, -1)]


def make_time_split(times: np.ndarray, cv: CVConfig, groups: np.ndarray | None = None) -> Split:
    """The (fold, train_from) of every row, in the rows' given order (module doc)."""
    n, k = len(times), cv.n_splits
    if n < k + 1:
        raise DataError(f"cv.n_splits = {k} time folds need at least {k + 1} rows, the "
                        f"training data has {n}; lower cv.n_splits")
    codes = time_codes(times, groups)
    starts = valid_starts(codes, k)
    if (np.diff(starts) == 0).any():
        fit = int(np.flatnonzero(np.diff(starts) == 0)[0])
        raise DataError(f"cv.time = {cv.time!r}: fit {fit}'s validation block is empty (one "
                        f"timestamp holds more than {n // (k + 1)} rows, a block's share); "
                        f"lower cv.n_splits = {k}")
    if starts[0] - cv.gap <= 0:
        raise DataError(f"cv.gap = {cv.gap} leaves fit 0 with no training rows: its "
                        f"validation begins at distinct timestamp {int(starts[0])}; set cv.gap "
                        f"below {int(starts[0])} or lower cv.n_splits = {k}")
    folds = np.searchsorted(starts, codes, side="right") - 1
    train_from = np.searchsorted(starts - cv.gap, codes, side="right")
    return Split(folds.reshape(-1, 1).astype(np.int64), train_from.astype(np.int64))


def check_time_split(split: Split, times: np.ndarray, n_splits: int,
                     groups: np.ndarray | None = None) -> None:
    """Each fit trains on some rows and validates others, all of them later (a group at its
    first timestamp), and no group straddles a fit's train and valid rows."""
    if split.train_from is None or split.folds.shape[1] != 1:
        raise DataError("the stored split has no train_from column: it is not a time split; "
                        "start a new run for cv.strategy = \"time\"")
    codes = time_codes(times, groups)
    for k in range(n_splits):
        train = split.train_from <= k
        valid = split.folds[:, 0] == k
        if not train.any() or not valid.any():
            raise DataError(f"time fit {k} has {int(train.sum())} training and "
                            f"{int(valid.sum())} validation rows; start a new run")
        if (train & valid).any() or codes[train].max() >= codes[valid].min():
            raise DataError(f"time fit {k} trains on rows at or after its validation rows: "
                            "leak; start a new run")


def describe_time_split(split: Split, times: np.ndarray, cv: CVConfig) -> list[str]:
    """The printed layout: each fit's training and validation periods, with row counts."""
    lines = [f"time split on cv.time = {cv.time!r}, gap {cv.gap} timestamp(s): "
             f"{cv.n_splits} expanding-window fits"]
    for k in range(cv.n_splits):
        train, valid = split.train_from <= k, split.folds[:, 0] == k
        lines.append(f"  fit {k}: train {_period(times[train])}  valid {_period(times[valid])}")
    never = split.folds[:, 0] == -1
    lines.append(f"  never validated (trains only): {_period(times[never])}")
    return lines


def _period(times: np.ndarray) -> str:
    if not len(times):
        return "(none)"
    return f"{_when(times.min())} .. {_when(times.max())} ({len(times)} rows)"


def _when(t) -> str:
    if isinstance(t, np.datetime64):
        text = pd.Timestamp(t).isoformat()
        return text.removesuffix("T00:00:00")
    return f"{t:g}"
