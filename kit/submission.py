"""Submissions: built from test probabilities, checked against the sample, written atomically.

A submission that does not match the competition's sample submission (columns, order,
ids, row count, dtypes, missing values) is a SubmissionError, never a file.

    write_submission(frame, sample_path="data/titanic/gender_submission.csv",
                     dest="runs/titanic/.../submission.csv")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import SubmissionError
from kit.io import atomic_path, write_csv


def read_sample(path: str | Path, nrows: int | None = None) -> pd.DataFrame:
    """The sample submission (its first `nrows` rows when given)."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(
            f"sample submission not found: {path}; it comes with the competition data "
            "(set data.sample_submission in the competition's config.toml)"
        )
    try:
        return pd.read_csv(path, nrows=nrows)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"cannot read sample submission {path}: {exc}") from None


def validate_submission(frame: pd.DataFrame, sample: pd.DataFrame, *, source: str = "",
                        metric: str = "") -> None:
    """Raise SubmissionError naming the first mismatch between `frame` and `sample`; float
    prediction columns must be finite, and non-negative under `metric` "rmsle"."""
    where = f"{source}: " if source else ""
    if list(frame.columns) != list(sample.columns):
        raise SubmissionError(
            f"{where}columns {list(frame.columns)} differ from the sample's "
            f"{list(sample.columns)} (names and order must match)"
        )
    if len(frame) != len(sample):
        raise SubmissionError(f"{where}{len(frame)} rows, the sample has {len(sample)}")
    id_col = sample.columns[0]
    missing_id = frame[id_col].isna()
    if missing_id.any():  # before the id sets: a missing id is not an id string
        rows = frame.index[missing_id][:5].tolist()
        raise SubmissionError(f"{where}column {id_col!r} has missing ids (rows {rows})")
    dup = frame[id_col][frame[id_col].duplicated()]
    if len(dup):
        raise SubmissionError(f"{where}duplicate ids in {id_col!r}: {dup.head(5).tolist()}")
    ids, expected = set(frame[id_col].astype(str)), set(sample[id_col].astype(str))
    if ids != expected:
        missing, extra = sorted(expected - ids)[:5], sorted(ids - expected)[:5]
        raise SubmissionError(
            f"{where}ids in {id_col!r} differ from the sample: missing {missing}, "
            f"unexpected {extra}"
        )
    for col in sample.columns:
        if frame[col].isna().any():
            raise SubmissionError(f"{where}column {col!r} has missing values")
        want, got = sample[col].dtype, frame[col].dtype
        values = col != id_col and _kind(got) == "float" and _scores_floats(metric)
        if _kind(want) != _kind(got) and not (values and _kind(want) == "int"):
            # a regression's or a probability metric's sample may hold integer placeholders
            # (count = 0, target = 0): the predictions are floats; a label column must keep
            # the sample's type (1 is not 1.0 to a scorer)
            raise SubmissionError(
                f"{where}column {col!r} has dtype {got}, the sample has {want}"
            )
        if col != id_col and _kind(got) == "float":
            _check_values(frame[col].to_numpy(np.float64), col, where, metric)


def _regression(metric: str) -> bool:
    from kit.metrics import METRICS

    return metric in METRICS and METRICS[metric].problem == "regression"


PROBABILITY_METRICS = ("auc", "logloss")  # scored on probabilities, not labels


def _scores_floats(metric: str) -> bool:
    return _regression(metric) or metric in PROBABILITY_METRICS


def _check_values(values: np.ndarray, col: str, where: str, metric: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise SubmissionError(f"{where}column {col!r} has non-finite values (inf) in rows "
                              f"{np.flatnonzero(bad)[:5].tolist()}; the model diverged")
    if metric == "rmsle" and (values < 0).any():
        raise SubmissionError(f"{where}column {col!r} has negative values in rows "
                              f"{np.flatnonzero(values < 0)[:5].tolist()}, which rmsle cannot "
                              "score")


def _kind(dtype) -> str:
    # int and float differ for Kaggle's scorer on label columns; object/str are one kind.
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "str"


def build_submission(
    ids: np.ndarray,
    proba: np.ndarray,
    classes: list,
    sample: pd.DataFrame,
    *,
    kind: str = "label",
    metric: str = "",
) -> pd.DataFrame:
    """The submission frame in the sample's row order: argmax labels, positive-class proba,
    or regression values (full float64 precision; clipped at 0 under rmsle, as it scores)."""
    id_col, target_col = sample.columns[0], sample.columns[-1]
    if kind == "label":
        values = np.asarray(classes, dtype=object)[proba.argmax(1)]
    elif kind == "value":
        values = proba[:, 0].astype(np.float64)
        if metric == "rmsle":
            values = np.clip(values, 0, None)
    else:
        values = proba[:, -1]
    frame = pd.DataFrame({id_col: ids, target_col: values})
    try:
        if kind == "label":  # probabilities and values stay float64: a cast to an
            # integer sample column (a placeholder 0) would truncate them all to 0
            frame[target_col] = frame[target_col].astype(sample[target_col].dtype)
    except (ValueError, TypeError):
        raise SubmissionError(
            f"predicted labels {list(classes)[:5]} cannot be written as the sample's "
            f"{sample[target_col].dtype} column {target_col!r}; check data.target and "
            "submission.kind") from None
    if pd.api.types.is_integer_dtype(sample[id_col].dtype):
        frame[id_col] = frame[id_col].astype(sample[id_col].dtype)
    order = pd.Index(frame[id_col].astype(str)).get_indexer(sample[id_col].astype(str))
    if (order < 0).any():
        missing = sample[id_col][order < 0].head(5).tolist()
        raise SubmissionError(f"no prediction for sample ids {missing}")
    return frame.iloc[order].reset_index(drop=True)


def write_submission(frame: pd.DataFrame, sample_path: str | Path, dest: str | Path, *,
                     metric: str = "") -> Path:
    """Validate `frame` against the sample submission, then write it atomically to `dest`."""
    validate_submission(frame, read_sample(sample_path), source=str(dest), metric=metric)
    return write_csv(dest, frame)


def validate_file(path: str | Path, sample_path: str | Path, *, metric: str = "") -> pd.DataFrame:
    """Check a submission CSV on disk (before `kaggle competitions submit`)."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"submission file not found: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: not a readable CSV ({exc})") from None
    validate_submission(frame, read_sample(sample_path), source=str(path), metric=metric)
    return frame


# --- streamed: a test set too big to hold (kit/out_of_core/) ------------------------------

CHUNK_ROWS = 65_536  # sample rows read at a time


def sample_head(path: Path) -> pd.DataFrame:
    """The sample's first rows (its columns and dtypes), read before training."""
    return read_sample(path, nrows=1000)


def write_streamed_submission(batches, classes: list, sample_path: Path, head: pd.DataFrame,
                              dest: Path, *, kind: str, metric: str) -> Path:
    """The submission built chunk by chunk in the test file's order, each chunk checked
    against the sample's rows at the same place (ids equal in order, values valid); into
    a temporary file, renamed when every row matched."""
    dtypes = {c: head[c].dtype for c in head.columns}
    id_col = head.columns[0]
    sample = pd.read_csv(sample_path, chunksize=CHUNK_ROWS, dtype=dtypes)
    buffered = head.iloc[:0]
    done = 0
    with atomic_path(dest) as tmp, open(tmp, "w", newline="") as out:
        out.write(",".join(head.columns) + "\n")
        for ids, pred in batches:
            while len(buffered) < len(ids):
                chunk = next(sample, None)
                if chunk is None:
                    break
                buffered = pd.concat([buffered, chunk], ignore_index=True)
            want, buffered = buffered.iloc[:len(ids)], buffered.iloc[len(ids):]
            if len(want) < len(ids):
                raise SubmissionError(f"{sample_path}: has {done + len(want)} rows, the test "
                                      f"file more; test id {ids[len(want)]!r} is not in the "
                                      "sample: use the competition's own test file")
            _same_ids(want[id_col], ids, done, sample_path)
            frame = build_submission(ids, pred, classes, want.reset_index(drop=True), kind=kind,
                                     metric=metric)
            validate_submission(frame, want.reset_index(drop=True), source=str(dest),
                                metric=metric)
            frame.to_csv(out, header=False, index=False)
            done += len(ids)
        left = buffered if len(buffered) else next(sample, None)
        if left is not None and len(left):
            raise SubmissionError(f"the test file has no id {left[id_col].iloc[0]!r} that "
                                  f"{sample_path} has (row {done}); the test file must hold "
                                  "every id of the sample: use the competition's own test file")
    return dest


def _same_ids(want: pd.Series, ids: np.ndarray, done: int, sample_path: Path) -> None:
    got = pd.Series(ids).astype(str).to_numpy()
    expected = want.astype(str).to_numpy()
    differ = np.flatnonzero(got != expected)
    if len(differ):
        i = int(differ[0])
        raise SubmissionError(f"row {done + i} of the test file has id {got[i]!r}, "
                              f"{sample_path} has {expected[i]!r} there; a streamed "
                              "submission is written in the test file's order, which must be "
                              "the sample's (sort one like the other), and every sample id "
                              "must be in the test file")
