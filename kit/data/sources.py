"""Table sources: `data.train` / `data.test` as a CSV, a parquet file, a folder of parquet
files, or a glob of either, read into one DataFrame with errors naming the file.

A CSV larger than `data.csv_cache_mb` (or any CSV with `data.dtypes` set) is converted once,
record batch by record batch, by pyarrow's streaming CSV reader into a parquet file, never
held whole as text, with a progress bar over its bytes. The streaming reader fixes each
column's type from what it has read, so a column that looks like integers at the top and
holds "3.5" or "n/a" further down would fail mid-file. The kit infers the types from the
first `SAMPLE_ROWS` rows instead, lets `data.dtypes` override them ({"col": "float64"}),
and turns a later value that does not fit into an error naming the column, the line and
the fix. The parquet lands in `<data folder>/.kit-cache/` (the run's cache folder where the
data folder is read-only, as on Kaggle), named by the CSV's name, size and modification
time, and is reused while those match.

    frame = read_table(data_dir, "train.csv", what="train", required=["id", "target"])
"""

from __future__ import annotations

import csv
import glob
import os
from pathlib import Path

import numpy as np
import pandas as pd

from kit.data.csv import read_csv
from kit.errors import DataError
from kit.io import atomic_path

SAMPLE_ROWS = 100_000  # rows the column types are inferred from
BLOCK_BYTES = 1 << 24  # CSV bytes per record batch of the streaming reader
DTYPES = ("int64", "float64", "string", "bool")  # data.dtypes values
CACHE = ".kit-cache"


def source_files(data_dir: Path, spec: str, what: str) -> list[Path]:
    """The files `spec` names under `data_dir`: one file, a folder's *.parquet, or a glob."""
    path = Path(data_dir) / spec
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
    elif path.is_dir():
        files = sorted(path.glob("*.parquet"))
    elif path.exists():
        files = [path]
    else:
        raise DataError(f"{what} file not found: {path}; fix data.{what} in config.toml (a CSV, "
                        "a parquet file, a folder of parquet files, or a glob)")
    if not files:
        raise DataError(f"{path}: no {'files match' if glob.has_magic(spec) else 'parquet files'}"
                        f" (data.{what}); give a CSV, a parquet file, a folder of them or a glob")
    kinds = {_kind(f) for f in files}
    if len(kinds) > 1 or None in kinds:
        odd = [f.name for f in files if _kind(f) is None][:3] or sorted(kinds)
        raise DataError(f"{path}: data.{what} mixes or holds files that are neither .csv nor "
                        f".parquet ({odd}); point it at one kind")
    return files


def source_exists(data_dir: Path, spec: str) -> bool:
    """Whether `spec` names anything yet under `data_dir` (a glob: at least one match)."""
    path = Path(data_dir) / spec
    return any(glob.iglob(str(path))) if glob.has_magic(spec) else path.exists()


def _kind(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".parquet"] or suffixes[-1:] == [".pq"]:
        return "parquet"
    return "csv" if ".csv" in suffixes else None


def read_table(data_dir: Path, spec: str, *, what: str, required: list[str] = (),
               dtypes: dict | None = None, cache_mb: float = 256.0,
               cache_dir: Path | None = None) -> pd.DataFrame:
    """One DataFrame from `spec`'s files (module doc); `required` columns checked."""
    files = source_files(data_dir, spec, what)
    dtypes = _check_dtypes(dtypes or {})
    frames = []
    for path in files:
        if _kind(path) == "csv" and (dtypes or path.stat().st_size > cache_mb * 2**20):
            path = csv_to_parquet(path, _cache_folder(path, cache_dir), dtypes)
        frames.append(read_csv(path, what=what) if _kind(path) == "csv" else _read_parquet(path))
    _check_same_columns(frames, files)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{files[0]} has no column(s) {missing} (columns: "
                        f"{list(frame.columns)[:20]}); fix data.id / data.target / features in "
                        "the competition's config.toml")
    return frame


def parquet_sources(data_dir: Path, spec: str, *, what: str, required: list[str] = (),
                    dtypes: dict | None = None, cache_dir: Path | None = None) -> list[Path]:
    """`spec`'s files as parquet, never read whole: every CSV converted (streamed) to its
    cached parquet; the parts' schemas must agree, and `required` columns exist."""
    import pyarrow.parquet as pq

    files = source_files(data_dir, spec, what)
    dtypes = _check_dtypes(dtypes or {})
    paths = [csv_to_parquet(f, _cache_folder(f, cache_dir), dtypes) if _kind(f) == "csv" else f
             for f in files]
    schemas = []
    for path in paths:
        try:
            schemas.append(pq.read_schema(path))
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary by what is wrong
            raise DataError(f"{path} is not a readable parquet file ({exc}); "
                            "download it again") from None
    for path, schema in zip(paths[1:], schemas[1:], strict=True):
        if not schema.equals(schemas[0]):
            first = dict(zip(schemas[0].names, schemas[0].types, strict=True))
            here = dict(zip(schema.names, schema.types, strict=True))
            differ = sorted(set(first) ^ set(here)) or [c for c in first if first[c] != here[c]]
            raise DataError(f"{path} and {paths[0]} are parts of one table but differ in "
                            f"column(s) {differ[:5]}; give every part the same columns and "
                            "types (or set data.dtypes for CSV parts)")
    missing = [c for c in required if c not in schemas[0].names]
    if missing:
        raise DataError(f"{files[0]} has no column(s) {missing} (columns: "
                        f"{schemas[0].names[:20]}); fix data.id / data.target in the "
                        "competition's config.toml")
    return paths


def _check_same_columns(frames: list[pd.DataFrame], files: list[Path]) -> None:
    """Parts of one table hold the same columns with the same types."""
    first = frames[0].dtypes
    for frame, path in zip(frames[1:], files[1:], strict=True):
        if not frame.dtypes.equals(first):
            names = set(first.index) ^ set(frame.columns)
            differ = sorted(names) or [c for c in first.index if first[c] != frame.dtypes[c]]
            raise DataError(f"{path} and {files[0]} are parts of one table but differ in "
                            f"column(s) {differ[:5]}; give every part the same columns and "
                            "types (or set data.dtypes for CSV parts)")


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary by what is wrong
        raise DataError(f"{path} is not a readable parquet file ({exc}); download it again") from None
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows")
    return table.to_pandas()


def _check_dtypes(dtypes: dict) -> dict:
    bad = {k: v for k, v in dtypes.items() if v not in DTYPES}
    if bad:
        raise DataError(f"data.dtypes {bad}: give each column one of {', '.join(DTYPES)}")
    return dict(dtypes)


def _cache_folder(path: Path, cache_dir: Path | None) -> Path:
    beside = path.parent / CACHE
    if os.access(path.parent, os.W_OK) or cache_dir is None:
        return beside
    return Path(cache_dir) / "sources"


# --- CSV -> parquet, streamed ---------------------------------------------------------------


def csv_to_parquet(path: Path, folder: Path, dtypes: dict | None = None) -> Path:
    """The parquet copy of CSV `path` (made now, or reused when the CSV is unchanged)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from tqdm import tqdm

    stat = path.stat()
    dest = folder / f"{path.name}-{stat.st_size}-{stat.st_mtime_ns}.parquet"
    if dest.exists():
        return dest
    if stat.st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); download the competition data again")
    types = {**infer_types(path), **{k: _arrow(v) for k, v in (dtypes or {}).items()}}
    folder.mkdir(parents=True, exist_ok=True)
    try:  # opening reads the first block already
        reader = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(column_types=types),
                                read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES))
    except pa.ArrowInvalid as exc:
        raise _mismatch(path, str(exc), 0, types) from None
    with atomic_path(dest) as tmp, tqdm(unit=" rows", unit_scale=True, leave=False,
                                        desc=f"{path.name} -> parquet") as bar:
        writer = pq.ParquetWriter(tmp, reader.schema)
        try:
            for batch in _batches(reader, path, types):
                writer.write_batch(batch)
                bar.update(batch.num_rows)
        finally:
            writer.close()
    return dest


def _batches(reader, path: Path, types: dict):
    """The reader's record batches; a value its column's type refuses is _mismatch's error."""
    import pyarrow as pa

    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _mismatch(path, str(exc), rows, types) from None
        rows += batch.num_rows
        yield batch


def infer_types(path: Path) -> dict:
    """{column: arrow type} from the first SAMPLE_ROWS rows (pandas' inference)."""
    import pyarrow as pa

    sample = pd.read_csv(path, nrows=SAMPLE_ROWS, encoding="utf-8", encoding_errors="replace")
    types = {}
    for column, dtype in sample.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            types[column] = pa.bool_()
        elif pd.api.types.is_integer_dtype(dtype):
            types[column] = pa.int64()
        elif pd.api.types.is_float_dtype(dtype):
            types[column] = pa.float64()
        else:
            types[column] = pa.string()
    return types


def _arrow(name: str):
    import pyarrow as pa

    return {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
            "bool": pa.bool_()}[name]


def _mismatch(path: Path, message: str, rows_done: int, types: dict) -> DataError:
    """The first row after `rows_done` rows that is short, or whose value does not fit its
    column's inferred type."""
    columns = list(types)
    if "CSV parse error" in message:  # a row with too few or too many fields
        line, record = _first_short(path, rows_done, len(columns))
        if line is None:
            return DataError(f"{path}: {message}; download the file again")
        return DataError(f"{path}, line {line} has {len(record)} of {len(columns)} fields: "
                         f"{','.join(record)[:80]!r} is not a whole row (a broken download?); "
                         "download the file again or fix that line")
    line, column, value = _first_misfit(path, rows_done, types)
    if column is None:
        return DataError(f"{path}: {message}; set data.dtypes for the column it names")
    kind = types[column]
    wider = "float64" if str(kind) == "int64" and _is_float(value) else "string"
    return DataError(
        f"{path}, line {line}: column {column!r} holds {value!r}, not {kind} as its first "
        f"{SAMPLE_ROWS:,} rows suggested (column {columns.index(column) + 1}); set "
        f"data.dtypes = {{ {column} = \"{wider}\" }} in config.toml")


def _first_misfit(path: Path, rows_done: int, types: dict):
    """(line number, column, value) of the first value from row `rows_done` on that does not
    parse as its column's type; (None, None, None) when none is found."""
    import pyarrow.csv as pacsv

    columns, options = list(types), pacsv.ConvertOptions()
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader)  # the header
        for i, record in enumerate(reader):
            if i < rows_done:
                continue
            for column, value in zip(columns, record, strict=False):
                if not _fits(value, str(types[column]), options):
                    return reader.line_num, column, value
    return None, None, None


def _first_short(path: Path, rows_done: int, n_columns: int):
    """(line number, fields) of the first record from row `rows_done` on whose field count
    is not `n_columns`; (None, None) when none is."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader)
        for i, record in enumerate(reader):
            if i >= rows_done and len(record) != n_columns:
                return reader.line_num, record
    return None, None


def _fits(value: str, kind: str, options) -> bool:
    """Whether pyarrow's CSV conversion (its null and bool spellings) takes `value`."""
    if kind == "string" or value in options.null_values:
        return True
    if kind == "int64":
        return value.strip().lstrip("+-").isdigit()
    if kind == "double":
        return _is_float(value)
    if kind == "bool":
        return value in options.true_values or value in options.false_values
    return True


def _is_float(value: str) -> bool:
    try:
        return np.isfinite(float(value)) or value.strip().lower() in ("inf", "-inf", "nan")
    except ValueError:
        return False
