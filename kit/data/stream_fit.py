"""The tabular preprocessors fitted in one pass over record batches: for a fold's training
rows when they do not fit in memory. The result is a NumericPreprocessor and a
CategoricalPreprocessor like their in-memory `fit`, saved and used the same way.

Numeric columns: per column the count, sum and sum of squares of the finite values (and of
their log1p, for the `log1p_skewed` choice, with the third power sum for the skewness).
The median, which imputes missing values, comes from a uniform sample of `sample` rows
(bottom-k on a seeded random key per row, merged batch by batch). The median is that of
the column's values in the sample, so it rests on the m sampled rows that hold a value in
the column: its rank among the column's values lies within
eps = sqrt(ln(2 / delta) / (2 m)) of 1/2 with probability at least 1 - delta
(Dvoretzky-Kiefer-Wolfowitz, given m): eps = 0.0085 for a complete column at the default
s = m = 100,000 and delta = 1e-6; a column missing in a share q of the rows has m near
(1 - q) s, e.g. eps = 0.012 at q = 1/2. A table of at most s rows is sampled whole, so its
median is exact. Means and standard deviations then follow exactly from the sums with the
missing values counted at that median, as the in-memory fit imputes them.

Categorical columns: each batch's value counts (values compared as strings, as the
in-memory fit does), merged; values seen at least `min_count` times form the vocabulary.
Exact.

    num, cat = fit_streamed(batches, ["Age", "Fare"], ["Sex"], log1p_skewed=0.75)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from kit.data.tabular import CategoricalPreprocessor, NumericPreprocessor, _as_str

SAMPLE = 100_000  # rows kept for the median


def median_rank_bound(sample: int, delta: float = 1e-6) -> float:
    """eps: the sampled median's rank lies in [1/2 - eps, 1/2 + eps] w.p. >= 1 - delta."""
    return math.sqrt(math.log(2 / delta) / (2 * sample))


class _Sums:
    """Power sums of one value space (raw, or log1p) per column, finite values only."""

    def __init__(self, n_columns: int):
        self.n = np.zeros(n_columns)
        self.s1, self.s2, self.s3 = (np.zeros(n_columns) for _ in range(3))

    def add(self, x: np.ndarray) -> None:
        ok = np.isfinite(x)
        v = np.where(ok, x, 0.0)
        self.n += ok.sum(axis=0)
        self.s1 += v.sum(axis=0)
        self.s2 += (v * v).sum(axis=0)
        self.s3 += (v * v * v).sum(axis=0)


def fit_streamed(batches: Iterable[pd.DataFrame], numeric: list[str], categorical: list[str],
                 *, log1p_skewed: float = 0.0, min_count: int = 2, sample: int = SAMPLE,
                 seed: int = 0) -> tuple[NumericPreprocessor, CategoricalPreprocessor]:
    """Both preprocessors from one pass over `batches` (the module doc says how)."""
    rng = np.random.default_rng(seed)
    raw, logs = _Sums(len(numeric)), _Sums(len(numeric))
    minimum = np.full(len(numeric), np.inf)
    keys, kept = np.zeros(0), np.zeros((0, len(numeric)))
    counts = {col: Counter() for col in categorical}
    reader = NumericPreprocessor()  # its float64 column reader, as the in-memory fit uses
    reader.columns = list(numeric)
    rows = 0
    for frame in batches:
        rows += len(frame)
        x = reader._raw(frame)
        x[~np.isfinite(x)] = np.nan
        raw.add(x)
        missing_inf = np.where(np.isnan(x), np.inf, x)
        minimum = np.minimum(minimum, missing_inf.min(axis=0) if len(x) else minimum)
        with np.errstate(invalid="ignore"):
            logs.add(np.log1p(np.where(x >= 0, x, np.nan)))
        keys, kept = _bottom_k(np.concatenate([keys, rng.random(len(x))]),
                               np.concatenate([kept, x]), sample)
        for col in categorical:
            counts[col].update(_as_str(frame[col]).value_counts(dropna=True).to_dict())
    return (_numeric(numeric, raw, logs, minimum, kept, rows, log1p_skewed),
            _categorical(categorical, counts, min_count))


def _bottom_k(keys: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows with the smallest keys: a uniform sample without replacement."""
    if len(keys) <= k:
        return keys, rows
    pick = np.argpartition(keys, k)[:k]
    return keys[pick], rows[pick]


def _numeric(columns, raw: _Sums, logs: _Sums, minimum, kept, rows: int,
             log1p_skewed: float) -> NumericPreprocessor:
    num = NumericPreprocessor(log1p_skewed)
    num.columns = list(columns)
    with np.errstate(all="ignore"):
        mean = raw.s1 / raw.n
        m2 = raw.s2 / raw.n - mean ** 2
        m3 = raw.s3 / raw.n - 3 * mean * raw.s2 / raw.n + 2 * mean ** 3
        skew = np.where(m2 > 1e-12, m3 / m2 ** 1.5, 0.0)
    num.log1p = ((np.nan_to_num(skew) > log1p_skewed) & (minimum >= 0) if log1p_skewed
                 else np.zeros(len(columns), bool))
    sums = [logs if num.log1p[j] else raw for j in range(len(columns))]
    sample = np.where(num.log1p, np.log1p(np.where(kept >= 0, kept, np.nan)), kept)
    with np.errstate(all="ignore"):
        median = np.nanmedian(sample, axis=0) if len(sample) else np.zeros(len(columns))
    num.median = np.nan_to_num(median, nan=0.0)
    n_obs = np.array([s.n[j] for j, s in enumerate(sums)])
    s1 = np.array([s.s1[j] for j, s in enumerate(sums)])
    s2 = np.array([s.s2[j] for j, s in enumerate(sums)])
    missing = rows - n_obs  # imputed with the median, as the in-memory fit does
    if rows:
        num.mean = (s1 + missing * num.median) / rows
        var = np.maximum((s2 + missing * num.median ** 2) / rows - num.mean ** 2, 0.0)
        std = np.sqrt(var)
    else:
        num.mean, std = np.zeros(len(columns)), np.ones(len(columns))
    num.std = np.where(std > 1e-12, std, 1.0)
    return num


def _categorical(columns, counts: dict[str, Counter], min_count: int) -> CategoricalPreprocessor:
    cat = CategoricalPreprocessor(min_count)
    cat.columns = list(columns)
    for col in columns:
        kept = sorted(v for v, n in counts[col].items() if n >= min_count)
        cat.vocab[col] = {value: code for code, value in enumerate(kept, start=2)}
    return cat
