"""The submission of a test set too big to hold: built chunk by chunk in the test file's
order, each chunk checked against the sample's rows at the same place (kit/submission.py
holds the one rule of the submission's form and the checks of a whole frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import SubmissionError
from kit.io import atomic_path
from kit.submission import SubmissionForm, build_submission, read_sample, validate_submission

CHUNK_ROWS = 65_536  # sample rows read at a time


def sample_head(path: Path) -> pd.DataFrame:
    """The sample's first rows (its columns and dtypes), read before training."""
    return read_sample(path, nrows=1000)


def write_streamed_submission(batches, classes: list, sample_path: Path, head: pd.DataFrame,
                              dest: Path, form: SubmissionForm) -> Path:
    """The submission built chunk by chunk in the test file's order, each chunk checked
    against the sample's rows at the same place (ids equal in order, values valid); into
    a temporary file, renamed when every row matched."""
    dtypes = {c: head[c].dtype for c in head.columns}
    id_col = head.columns[0]
    # head's columns only: one target's run of several reads the id and its own column
    sample = pd.read_csv(sample_path, chunksize=CHUNK_ROWS, dtype=dtypes, usecols=list(head.columns))
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
            frame = build_submission(ids, pred, classes, want.reset_index(drop=True), form)
            validate_submission(frame, want.reset_index(drop=True), source=str(dest), form=form)
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
