"""A tabular competition's rows as a fold's models read them.

`Tables` holds the prepared train and test rows (index = row position; the id, the
feature columns, `_row`, and `_y` in train), their parquet copies for the stream, the
feature column lists and the train targets. A fold makes its own (`fold_setup`): rows that
features.py's keep_train_rows() drops, labelled rows its extra_train_rows() adds (never
to validation), and fold-safe columns (kit/tasks/tabular/fold_features.py) fitted on the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import Config
from kit.data.weights import read_weights
from kit.errors import DataError
from kit.io import write_parquet
from kit.objective import check_target
from kit.runtime import distributed as dist
from kit.tasks import Prepared
from kit.tasks.tabular.fold_features import fit_fold_columns

ROW = "_row"  # row position in the cached parquet; streams filter folds on it


@dataclass
class Tables:
    """What a fold's models read: the train and test rows (index = row position; id,
    feature columns, ROW, and `_y` in train), their parquet copies for the stream, and
    the feature columns. Extra training rows and fold features (kit/tasks/tabular/fold_features.py)
    make a fold its own."""

    train: pd.DataFrame
    test: pd.DataFrame
    cache: Path
    numeric: list[str]
    categorical: list[str]
    y: np.ndarray  # the train rows' targets by position (Prepared.y, plus any extra rows)
    w: np.ndarray | None = None  # data.weight by position, like y (None: unweighted)
    # the parts whose parquet copy this object wrote (a copy is a new object: it writes its own)
    written: set = field(default_factory=set, init=False, repr=False, compare=False)

    def parquet(self, part: str) -> Path:
        """`cache`/<part>.parquet, the rows TabularStream reads (networks without
        train.device_data), written the first time a model asks: other kinds never do."""
        path = self.cache / f"{part}.parquet"
        if part not in self.written:
            self.cache.mkdir(parents=True, exist_ok=True)
            write_parquet(path, getattr(self, part))
            self.written.add(part)
        return path


def make_tables(train: pd.DataFrame, test: pd.DataFrame, cache: Path, numeric, categorical,
                y: np.ndarray, w: np.ndarray | None = None) -> Tables:
    """The tables; with row weights, train's `_w` column holds each row's (what a network's
    batches carry as "w")."""
    if w is not None:
        train = train.assign(_w=np.asarray(w, dtype=np.float64)[train.index.to_numpy()])
    return Tables(train, test, cache, list(numeric), list(categorical), y, w)


def check_classes(cfg: Config, classes: list, data_dir: Path) -> None:
    """With data.classes set (Titanic: [0, 1]), any other target value is a data error."""
    expected = set(cfg.data.classes)
    unexpected = [c for c in classes if str(c) not in expected]
    if expected and unexpected:
        raise DataError(f"{data_dir / cfg.data.train}: target {cfg.data.target!r} has values "
                        f"{sorted(classes, key=str)[:10]}, expected only {list(cfg.data.classes)} "
                        f"(data.classes); fix the target column or data.classes")


def _fit_rows(prep: Prepared, fold: int, train_idx: np.ndarray) -> np.ndarray:
    """The fold's training rows, less those features.py's keep_train_rows() drops."""
    hook = prep.state["keep_rows"]
    if hook is None:
        return train_idx
    keep = np.asarray(hook(prep.state["frame"].iloc[train_idx].reset_index(drop=True)))
    if keep.dtype != bool or keep.shape != train_idx.shape:
        raise DataError(f"features.py keep_train_rows() returned {keep.dtype} of shape "
                        f"{keep.shape} for {len(train_idx)} rows; return one bool per row")
    if not keep.any():
        raise DataError("features.py keep_train_rows() dropped every training row of fold "
                        f"{fold}; return True for the rows to keep")
    if dist.is_main() and not keep.all():
        print(f"fold {fold}: keep_train_rows() dropped {int((~keep).sum())} training rows")
    return train_idx[keep]


def fold_setup(prep: Prepared, cfg: Config, fold: int, train_idx: np.ndarray,
                valid_idx: np.ndarray, cache: Path) -> tuple[Tables, np.ndarray]:
    """The fold's tables and training rows: keep_train_rows() drops rows, extra_train_rows()
    adds labelled rows (never to validation), fold features are fitted on the result (for
    those rows themselves by an inner K-fold). Own parquet copies under `cache`."""
    rows = _fit_rows(prep, fold, train_idx)
    base, frame, fns = prep.state["tables"], prep.state["frame"], prep.state["fold_fns"]
    extra = _extra_rows(prep, cfg, fold, rows)
    if extra is None and not fns:
        return base, rows
    train, test, y, w = base.train, base.test, base.y, base.w
    numeric, categorical = list(base.numeric), list(base.categorical)
    if extra is not None:
        added, y_added = extra
        positions = added.index.to_numpy()
        own = train.columns.drop([ROW, "_y", "_w"], errors="ignore")  # the fold sets these
        train = pd.concat([train.drop(columns="_w", errors="ignore"),
                           added.reindex(columns=own).assign(**{ROW: positions, "_y": y_added})])
        frame, y = pd.concat([frame, added]), np.concatenate([y, y_added])
        if w is not None:  # an added row weighs its data.weight column's value, else 1
            w = np.concatenate([w, _added_weights(cfg, added)])
        rows = np.concatenate([rows, positions])
    if fns:
        train_cols, test_cols = fit_fold_columns(
            fns, frame, rows, valid_idx, prep.state["test_frame"], target=cfg.data.target,
            n_inner=cfg.cv.n_splits, seed=cfg.cv.seed + fold, groups=_groups(cfg, frame, rows),
            stratify=cfg.cv.strategy == "stratified_group" and bool(prep.classes),
            times=prep.times)  # a time split's inner split never fits on later rows
        clash = [c for c in train_cols.columns if c in frame.columns]
        if clash:
            raise DataError(f"fold features {clash} already exist as columns; give them new "
                            "names")
        numeric += [c for c in train_cols.columns if pd.api.types.is_numeric_dtype(
            train_cols[c]) and not pd.api.types.is_bool_dtype(train_cols[c])]
        categorical += [c for c in train_cols.columns if c not in numeric]
        train, test = train.join(train_cols), test.join(test_cols)
    return make_tables(train, test, cache, numeric, categorical, y, w), rows


def _added_weights(cfg: Config, added: pd.DataFrame) -> np.ndarray:
    if cfg.data.weight not in added.columns:
        return np.ones(len(added))
    return read_weights(added.reset_index(drop=True), cfg.data.weight,
                        "features.py extra_train_rows()")


def all_rows_setup(prep: Prepared, cfg: Config, cache: Path) -> tuple[Tables, np.ndarray]:
    """A refit's tables and training rows: every train row as one fit, by the fold rule
    (keep_train_rows, extra_train_rows, fold features fitted on all rows: the train rows'
    own columns by the same inner K-fold, the test rows' by a fit on all of them)."""
    fit = cfg.cv.n_splits * cfg.cv.repeats  # the index after the last fold fit: its own seed
    return fold_setup(prep, cfg, fit, np.arange(len(prep.ids)), np.array([], dtype=np.int64),
                      cache)


def _groups(cfg: Config, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray | None:
    """cv.group of the fit rows, for the inner K-fold of the fold features; an added row
    without one (extra_train_rows) is a group of its own."""
    if not cfg.cv.group:
        return None
    codes, _ = pd.factorize(frame[cfg.cv.group].iloc[rows])
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(missing.sum())
    return codes


def _extra_rows(prep: Prepared, cfg: Config, fold: int, rows: np.ndarray):
    """(rows indexed after the train rows, their targets) from features.py's
    extra_train_rows(fit), or None: labelled rows (an "original" dataset, as Playground
    solutions add) appended to the fold's training rows only."""
    hook = prep.state["extra_rows"]
    extra = None if hook is None else hook(prep.state["frame"].iloc[rows])
    if extra is None or len(extra) == 0:
        return None
    base, target = prep.state["tables"], cfg.data.target
    needed = [target, *base.numeric, *base.categorical]
    missing = [c for c in needed if not isinstance(extra, pd.DataFrame) or c not in extra]
    if missing:
        raise DataError(f"features.py extra_train_rows() returned rows without {missing[:5]}; "
                        "return a DataFrame with the target and every feature column")
    source = "features.py extra_train_rows()"
    check_target(cfg.competition.problem, extra[target], target, source)
    if prep.classes:
        y = pd.Index(prep.classes).get_indexer(extra[target]).astype(np.int64)
        if (y < 0).any():
            raise DataError(f"{source}: target values {sorted(set(extra[target][y < 0]))[:5]} "
                            f"are not among the classes {prep.classes[:10]}")
    else:
        y = extra[target].to_numpy(np.float64)
    extra = extra.reset_index(drop=True).set_axis(len(base.y) + np.arange(len(extra)))
    if dist.is_main():
        print(f"fold {fold}: extra_train_rows() added {len(extra)} training rows")
    return extra, y
