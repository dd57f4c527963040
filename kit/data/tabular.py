"""Tabular preprocessing, vectorized over whole columns (no per-row Python anywhere).

Both preprocessors are fitted on the training part of a fold only, saved as JSON in the
fold folder and loaded back for prediction.

    num = NumericPreprocessor().fit(train, ["Age", "Fare"])
    x_num = num.transform(test)                      # float32 (N, 2), standardized, no NaN
    cat = CategoricalPreprocessor().fit(train, ["Sex", "Embarked"])
    x_cat = cat.transform(test)                      # int64 (N, 2): 0 missing, 1 unseen, 2.. known
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kit.data.bins import NumericBins
from kit.errors import DataError
from kit.io import write_json
from kit.objective import TargetTransform

MISSING, UNSEEN = 0, 1  # reserved categorical codes; known values start at 2


def _columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: columns {missing} not in the data (have {list(frame.columns)})")


class NumericPreprocessor:
    """Median imputation (NaN and +-inf) then standardization, per column; with `log1p_skewed`
    > 0, log1p first on non-negative columns whose fitting-rows skewness exceeds it. With
    `scaling = "quantile"`, scikit-learn's QuantileTransformer (to a normal distribution,
    as TabM and RealMLP preprocess) between the imputation and the standardization: a
    network then sees heavy tails and outliers as it sees the bulk; trees do not care."""

    def __init__(self, log1p_skewed: float = 0.0, scaling: str = "standard") -> None:
        self.log1p_skewed = log1p_skewed
        self.scaling = scaling
        self.quantile = None  # the fitted QuantileTransformer under scaling = "quantile"
        self.log1p = np.zeros(0, dtype=bool)  # per column: log1p applied before the rest
        self.columns: list[str] = []
        self.median: np.ndarray = np.zeros(0)
        self.mean: np.ndarray = np.zeros(0)
        self.std: np.ndarray = np.ones(0)

    def fit(self, frame: pd.DataFrame, columns: list[str]) -> NumericPreprocessor:
        _columns(frame, columns, "NumericPreprocessor.fit")
        self.columns = list(columns)
        x = self._raw(frame)
        x[~np.isfinite(x)] = np.nan  # +-inf are as unusable as NaN
        self.log1p = self._skewed(x)
        x[:, self.log1p] = np.log1p(x[:, self.log1p])
        with np.errstate(all="ignore"):
            median = np.nanmedian(x, axis=0) if len(x) else np.zeros(len(columns))
        self.median = np.nan_to_num(median, nan=0.0)  # an all-NaN column imputes 0
        x = np.where(np.isnan(x), self.median, x)
        if self.scaling == "quantile" and len(x):
            x = self._fit_quantile(x)
        self.mean = x.mean(axis=0) if len(x) else np.zeros(len(columns))
        std = x.std(axis=0) if len(x) else np.ones(len(columns))
        self.std = np.where(std > 1e-12, std, 1.0)  # constant column -> all zeros, not NaN
        return self

    def _fit_quantile(self, x: np.ndarray) -> np.ndarray:
        from sklearn.preprocessing import QuantileTransformer

        # TabM's recipe: about one quantile per 30 rows, 10 to 1000
        n_quantiles = max(min(len(x) // 30, 1000), 10)
        self.quantile = QuantileTransformer(n_quantiles=min(n_quantiles, len(x)),
                                            output_distribution="normal", subsample=None)
        return self.quantile.fit_transform(x)

    def _skewed(self, x: np.ndarray) -> np.ndarray:
        """Columns to log1p: non-negative, skewness (NaN ignored) above the threshold."""
        if not self.log1p_skewed or not x.size:
            return np.zeros(x.shape[1], dtype=bool)
        with np.errstate(all="ignore"):
            centred = x - np.nanmean(x, axis=0)
            m2, m3 = np.nanmean(centred ** 2, axis=0), np.nanmean(centred ** 3, axis=0)
            skew = np.where(m2 > 1e-12, m3 / m2 ** 1.5, 0.0)
            non_negative = np.nanmin(np.where(np.isnan(x), np.inf, x), axis=0) >= 0
        return (np.nan_to_num(skew) > self.log1p_skewed) & non_negative

    def _raw(self, frame: pd.DataFrame, dtype=np.float64, dtypes: list | None = None
             ) -> np.ndarray:
        """The columns as one N x C array of `dtype` (NaN for missing; +-inf kept)."""
        if not self.columns:
            return np.zeros((len(frame), 0), dtype)
        sub = frame[self.columns]
        dtypes = list(sub.dtypes) if dtypes is None else dtypes
        # numpy ints and floats; booleans, strings and pandas' nullable types go one by one
        plain = all(isinstance(t, np.dtype) and t.kind in "iuf" for t in dtypes)
        if plain:  # the common case: one block copy, no per-column Python
            x = sub.to_numpy(dtype, na_value=np.nan)
            return x if x.flags.writeable else x.copy()  # one column of `dtype`: a view
        x = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        for j, col in enumerate(self.columns):  # strings, booleans: coerced column by column
            values = sub[col]
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                values = pd.to_numeric(values, errors="coerce")
            x[:, j] = values.to_numpy(np.float64, na_value=np.nan)
        return x

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        """float32 (N, C) as they are, NaN where missing or infinite: for tree libraries,
        which split on raw values and route missing ones themselves."""
        _columns(frame, self.columns, "NumericPreprocessor.values")
        x = self._raw(frame, np.float32).astype(np.float32, copy=False)
        x[~np.isfinite(x)] = np.nan
        return x

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """float32 (N, C). Column-major when the frame stores columns apart (Arrow data,
        most DataFrames): no transposing copy here; TabularStream's row shuffle (np.take)
        writes rows contiguous in the same pass."""
        _columns(frame, self.columns, "NumericPreprocessor.transform")
        # float32 data is scaled in float32 (half the memory traffic, no precision to
        # lose); anything wider in float64 until scaled, so a timestamp keeps its digits
        dtypes = list(frame.dtypes[self.columns])
        narrow = all(t in (np.float32, np.float16) for t in dtypes)
        work = np.float32 if narrow else np.float64
        x = self._raw(frame, work, dtypes)
        if self.log1p.any():
            with np.errstate(invalid="ignore"):  # a negative test value becomes NaN: imputed
                x[:, self.log1p] = np.log1p(x[:, self.log1p])
        bad = ~np.isfinite(x)
        if bad.any():
            np.copyto(x, np.broadcast_to(self.median.astype(work), x.shape), where=bad)
        if self.quantile is not None:
            x = self.quantile.transform(x).astype(work, copy=False)
        x -= self.mean.astype(work)
        x *= (1.0 / self.std).astype(work)
        return x.astype(np.float32, copy=False)

    def state_dict(self) -> dict:
        state = {"columns": self.columns, "median": self.median.tolist(),
                 "mean": self.mean.tolist(), "std": self.std.tolist(),
                 "log1p_skewed": self.log1p_skewed, "log1p": self.log1p.tolist(),
                 "scaling": self.scaling}
        if self.quantile is not None:  # its fitted state, restored by from_state
            state["quantiles"] = self.quantile.quantiles_.tolist()
        return state

    @classmethod
    def from_state(cls, state: dict) -> NumericPreprocessor:
        obj = cls(state.get("log1p_skewed", 0.0),  # runs before these keys have none
                  state.get("scaling", "standard"))
        if "quantiles" in state:
            from sklearn.preprocessing import QuantileTransformer

            quantiles = np.asarray(state["quantiles"], np.float64)
            obj.quantile = QuantileTransformer(n_quantiles=len(quantiles),
                                               output_distribution="normal", subsample=None)
            obj.quantile.quantiles_ = quantiles
            obj.quantile.references_ = np.linspace(0, 1, len(quantiles))
            obj.quantile.n_features_in_ = quantiles.shape[1]
        obj.log1p = np.asarray(state.get("log1p", [False] * len(state["columns"])), dtype=bool)
        obj.columns = list(state["columns"])
        obj.median, obj.mean, obj.std = (np.asarray(state[k], dtype=np.float64)
                                         for k in ("median", "mean", "std"))
        return obj


class CategoricalPreprocessor:
    """Values -> integer codes with `series.map(dict)`; 0 = missing, 1 = unseen in training.

    Values seen fewer than `min_count` times in training are coded as unseen, so the model
    learns what to do with the unseen code instead of meeting it first at test time.
    """

    def __init__(self, min_count: int = 1) -> None:
        self.min_count = min_count
        self.columns: list[str] = []
        self.vocab: dict[str, dict[str, int]] = {}

    def fit(self, frame: pd.DataFrame, columns: list[str]) -> CategoricalPreprocessor:
        _columns(frame, columns, "CategoricalPreprocessor.fit")
        self.columns = list(columns)
        for col in self.columns:
            counts = _as_str(frame[col]).value_counts(dropna=True)
            kept = sorted(counts[counts >= self.min_count].index)
            self.vocab[col] = {value: code for code, value in enumerate(kept, start=2)}
        return self

    @property
    def cardinalities(self) -> list[int]:
        """Embedding sizes: known values plus the two reserved codes."""
        return [len(self.vocab[c]) + 2 for c in self.columns]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        _columns(frame, self.columns, "CategoricalPreprocessor.transform")
        out = np.empty((len(frame), len(self.columns)), dtype=np.int64)
        for j, col in enumerate(self.columns):
            # codes in C (a Categorical, e.g. from TabularStream, has them already), then
            # look up only the distinct values; code -1 (missing) indexes the MISSING
            # appended at the end of the lookup table
            column = frame[col]
            if isinstance(column.dtype, pd.CategoricalDtype):
                codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
            else:
                codes, uniques = pd.factorize(column, use_na_sentinel=True)
            vocab, values = self.vocab[col], list(uniques)
            if all(type(v) is str for v in values):  # strings: plain dict lookups
                known = np.fromiter((vocab.get(v, UNSEEN) for v in values), np.int64,
                                    len(values))
            else:  # numbers, mixed: compared as strings, as fit saw them
                known = _as_str(pd.Series(values, dtype=object)).map(vocab)
                known = known.fillna(UNSEEN).to_numpy(np.int64)
            out[:, j] = np.append(known, MISSING)[codes]
        return out

    def state_dict(self) -> dict:
        return {"min_count": self.min_count, "columns": self.columns, "vocab": self.vocab}

    @classmethod
    def from_state(cls, state: dict) -> CategoricalPreprocessor:
        obj = cls(state["min_count"])
        obj.columns, obj.vocab = list(state["columns"]), dict(state["vocab"])
        return obj


def _as_str(series: pd.Series) -> pd.Series:
    """Categories compared as strings (1 and '1' are one value); NaN stays missing."""
    return series.astype("string").astype(object).where(series.notna(), None)


def save_preprocessors(path: Path, num: NumericPreprocessor, cat: CategoricalPreprocessor,
                       target: TargetTransform | None = None,
                       bins: NumericBins | None = None) -> None:
    """One JSON per fold: the numeric and categorical state, a regression's target
    transform (kit/objective.py) and the numeric bins of an embedding (kit/data/bins.py)."""
    state = {"numeric": num.state_dict(), "categorical": cat.state_dict()}
    if target is not None:
        state["target"] = target.state_dict()
    if bins is not None:
        state["bins"] = bins.state_dict()
    write_json(path, state)


def load_bins(path: Path) -> NumericBins | None:
    """The fold's numeric bins, None when its model took none."""
    state = json.loads(Path(path).read_text()).get("bins")
    return None if state is None else NumericBins.from_state(state)


def load_preprocessors(path: Path
                       ) -> tuple[NumericPreprocessor, CategoricalPreprocessor, TargetTransform | None]:
    try:
        state = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"preprocessor file missing: {path}; was this fold trained?") from None
    target = TargetTransform.from_state(state["target"]) if "target" in state else None
    return (NumericPreprocessor.from_state(state["numeric"]),
            CategoricalPreprocessor.from_state(state["categorical"]), target)
