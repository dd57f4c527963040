"""Per-row weights (data.weight): a train column the models train on and every score
weighs its rows by. Checked once when the data is read: numbers, finite, not negative, not
all zero; never a feature (kit/data/columns.py leaves the column out)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kit.errors import DataError


def read_weights(frame: pd.DataFrame, column: str, source: str) -> np.ndarray | None:
    """data.weight's column of `frame` as float64, or None when data.weight is unset."""
    if not column:
        return None
    values = weight_values(frame, column, source)
    if not values.any():
        raise DataError(f"{source}: every data.weight ({column!r}) is 0: no row would count")
    return values


def weight_values(frame: pd.DataFrame, column: str, source: str, offset: int = 0) -> np.ndarray:
    """`column` of `frame` as float64, each a finite number >= 0; the first bad one named
    with its row (`offset`: the frame's first row in the file, for a batch of a stream)."""
    if column not in frame.columns:
        raise DataError(f"{source}: no column data.weight = {column!r} (columns: "
                        f"{list(frame.columns)[:12]}...); fix data.weight in config.toml")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        value = frame[column].iloc[first:first + 1].tolist()[0]  # a Python value
        raise DataError(f"{source}: data.weight column {column!r} holds {value!r} in row "
                        f"{offset + first} ({int(bad.sum())} such value(s) here), not a finite "
                        "number >= 0; fix it or unset data.weight")
    return values
