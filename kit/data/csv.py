"""Reading competition CSVs with errors that name the file, the column and the fix."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from kit.errors import DataError


def read_csv(path: Path, *, required: list[str] = (), what: str = "") -> pd.DataFrame:
    """pandas.read_csv, with every failure a DataError naming `path`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what or 'data'} file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); download the competition data again")
    try:
        frame = pd.read_csv(path, encoding="utf-8", encoding_errors="replace",
                            on_bad_lines="error")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} has no columns; download the competition data again") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is malformed ({str(exc).strip()}); a truncated download? "
                        "download it again") from None
    if frame.empty:
        raise DataError(f"{path} has a header but no rows")
    _check_last_line(path, len(frame.columns))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path} has no column(s) {missing} (columns: {list(frame.columns)[:20]}); "
                        "fix data.id / data.target / features in the competition's config.toml")
    return frame


def _check_last_line(path: Path, n_columns: int) -> None:
    """A download cut mid-line ends without a newline on a short row; pandas pads it with NaN."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 65536))
        tail = fh.read()
    if tail.endswith((b"\n", b"\r")):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    try:
        fields = next(csv.reader(io.StringIO(last, newline="")), [])
    except csv.Error:  # a stray quote or carriage return: pandas already parsed the file
        return
    if len(fields) < n_columns:
        raise DataError(f"{path}: the last line has {len(fields)} of {n_columns} fields and no "
                        "line end: the file is cut (an interrupted download?); download it again")
