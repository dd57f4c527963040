"""The prepared table of an out-of-core run (package doc): one pass over the sources writes
cache/train.parquet and cache/test.parquet batch by batch; a fold reads them back filtered
on its `_fold`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kit.config import Config
from kit.data.columns import check_target_column, feature_columns
from kit.data.sources import parquet_sources
from kit.data.weights import weight_values
from kit.errors import DataError
from kit.hooks import load_hook, map_batches
from kit.io import atomic_path, file_stamp, write_json
from kit.splits.folds import hash_folds
from kit.tasks.tabular.tables import ROW, check_classes

BATCH_ROWS = 65_536  # rows per record batch read, transformed, predicted and written
VALID_ROWS = 500_000  # at most this many validation rows watched for early stopping
FOLD, Y, PART = "_fold", "_y", "_part"  # PART: 0..99 from a hash of the row number
W = "_w"  # data.weight's values (a weighted run only): what TabularTransform batches as "w"


@dataclass
class Streamed:
    """The prepared parquet files of an out-of-core run and what one pass learned."""

    train: Path  # id, features, _row, _y, _fold, _part, and _w under data.weight
    test: Path  # id, features, _row
    numeric: list[str]
    categorical: list[str]
    classes: list
    fold_rows: np.ndarray  # rows per fold
    balance: pd.DataFrame  # per fold: rows and class shares, or the target mean
    version: str = ""  # a hash of the stamp it was prepared from: each fold records it

    def to_json(self) -> dict:
        """What prepared.json keeps of it (the paths are the cache's)."""
        return {"numeric": self.numeric, "categorical": self.categorical,
                "classes": self.classes, "fold_rows": self.fold_rows.tolist(),
                "balance": self.balance.to_dict(orient="list")}

    @classmethod
    def from_json(cls, saved: dict, cache: Path) -> Streamed:
        """The inverse of to_json, for the files in `cache`."""
        return cls(cache / "train.parquet", cache / "test.parquet", saved["numeric"],
                   saved["categorical"], saved["classes"], np.array(saved["fold_rows"]),
                   pd.DataFrame(saved["balance"]), _version(saved.get("stamp")))


def prepare(cfg: Config, comp_dir: Path, data_dir: Path, cache: Path) -> Streamed:
    """The one pass over the sources (package doc): cache/train.parquet, cache/test.parquet."""
    d = cfg.data
    kw = {"dtypes": d.dtypes, "cache_dir": cache}
    train_files = parquet_sources(data_dir, d.train, what="train", required=[d.id, d.target], **kw)
    test_files = parquet_sources(data_dir, d.test, what="test", required=[d.id], **kw)
    stamp = _stamp(cfg, [*train_files, *test_files, comp_dir / "features.py"])
    done = cache / "prepared.json"
    saved = json.loads(done.read_text()) if done.exists() else {}
    if saved.get("stamp") == stamp:
        print(f"prepared table reused: {cache} (same sources, features.py and config)")
        return Streamed.from_json(saved, cache)
    classes = (_classes(cfg, train_files, data_dir)
               if cfg.competition.problem == "classification" else [])
    hook = load_hook(comp_dir, "features", "transform_batch")
    where = str(comp_dir / "features.py")
    cache.mkdir(parents=True, exist_ok=True)
    sources = tuple(pq.read_schema(files[0]).names for files in (train_files, test_files))
    check_target_column(cfg, sources[0], _head(test_files[0]), test_files[0])
    writer = _Prepared(cfg, classes, train=True, sources=sources)
    columns = writer.write(train_files, cache / "train.parquet", hook, where)
    _Prepared(cfg, classes, train=False, columns=columns).write(
        test_files, cache / "test.parquet", hook, where)
    numeric, categorical = columns
    st = Streamed(cache / "train.parquet", cache / "test.parquet", numeric, categorical,
                  classes, writer.fold_rows, writer.balance(), _version(stamp))
    write_json(done, {"stamp": stamp, **st.to_json()})  # last: a resumed run may trust it
    return st


def _stamp(cfg: Config, files: list[Path]) -> list:
    """What the prepared table depends on: the files' sizes and mtimes, the config's data,
    features, cv and problem."""
    return [[file_stamp(f) for f in files],
            repr((cfg.data, cfg.features, cfg.cv, cfg.competition.problem))]


def _head(path: Path) -> pd.DataFrame:
    """The first rows of a test file: enough to tell a target column from a blank one."""
    return next(pq.ParquetFile(path).iter_batches(batch_size=1000)).to_pandas()


def _version(stamp) -> str:
    return hashlib.blake2b(json.dumps(stamp).encode(), digest_size=8).hexdigest()


def _classes(cfg: Config, files: list[Path], data_dir: Path) -> list:
    """The target's sorted values, from a pass over the target column alone."""
    target, values, rows = cfg.data.target, set(), 0
    for batch in pq_batches(files, [target]):
        column = batch.column(0)
        if column.null_count:
            row = rows + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{files[0].parent}: target {target!r} is missing in row {row}; "
                            "drop the unlabelled rows or fix data.target")
        values.update(pc.unique(column).to_pylist())
        rows += batch.num_rows
        if len(values) > 1000:
            raise DataError(f"{files[0]}: target {target!r} has over 1000 distinct values; "
                            "a regression? set competition.problem = \"regression\"")
    classes = sorted(values)
    if len(classes) < 2:
        raise DataError(f"{files[0]}: target {target!r} has one value {classes}; nothing to "
                        "learn")
    check_classes(cfg, classes, data_dir)
    return classes


def pq_batches(files: list[Path], columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The files' record batches in order (row groups in file order, BATCH_ROWS at most).
    One row group at a time: ParquetFile.iter_batches over a whole file reads ahead of a
    slow consumer without bound (measured: 3.4 GB more at 10M rows)."""
    for path in files:
        file = pq.ParquetFile(path)
        for group in range(file.num_row_groups):
            yield from file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group],
                                         columns=columns, use_threads=False)


class _Prepared:
    """Writes one prepared parquet file batch by batch (package doc), atomically."""

    def __init__(self, cfg: Config, classes: list, *, train: bool, columns=None,
                 sources: tuple[list[str], list[str]] = ([], [])):
        self.cfg, self.classes, self.train, self.columns = cfg, classes, train, columns
        self.sources = sources  # the train and test files' columns, before the batch hook
        k = cfg.cv.n_splits
        self.fold_rows = np.zeros(k, dtype=np.int64)
        self.weight_total = 0.0  # data.weight's sum: all zero is refused
        self.counts = np.zeros((k, max(len(classes), 1)))  # rows per fold and class, or sums

    def write(self, files: list[Path], dest: Path, hook, where: str):
        from tqdm import tqdm

        d, schema, writer, offset = self.cfg.data, None, None, 0
        total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        with atomic_path(dest) as tmp, tqdm(total=total, unit=" rows", unit_scale=True,
                                            leave=False, desc=f"preparing {dest.stem}") as bar:
            try:
                for batch in pq_batches(files):
                    frame = batch.to_pandas()
                    if hook is not None:
                        frame = map_batches(hook, frame, hide=(d.target,) if self.train else (),
                                            where=where)
                    out = self._columns(frame, files[0], offset)
                    table = pa.Table.from_pandas(out, preserve_index=False)
                    if schema is None:
                        schema = _nullable_filled(table.schema, batch.schema)
                        writer = pq.ParquetWriter(tmp, schema)
                    writer.write_table(_cast(table, schema, files[0], offset), BATCH_ROWS)
                    offset += len(out)
                    bar.update(len(out))
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise DataError(f"{files[0]} has no rows")
            if self.train and self.cfg.data.weight and not self.weight_total:
                raise DataError(f"{files[0].parent}: every data.weight "
                                f"({self.cfg.data.weight!r}) is 0: no row would count")
        return self.columns

    def _columns(self, frame: pd.DataFrame, path: Path, offset: int) -> pd.DataFrame:
        d, cv = self.cfg.data, self.cfg.cv
        if self.columns is None:  # "auto" decided on the first batch, as the hook shaped it
            train_cols, test_cols = self.sources  # the hook adds its columns to both files
            both = [*test_cols, *(c for c in frame.columns if c not in train_cols)]
            self.columns = feature_columns(self.cfg, frame, both)
        numeric, categorical = self.columns
        missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: no feature column(s) {missing} after features.py; fix "
                            "features.numeric / features.categorical in config.toml")
        keep = [d.id, *numeric, *categorical]
        out = frame[keep].copy()
        out[ROW] = np.arange(offset, offset + len(frame), dtype=np.int64)
        if not self.train:
            return out
        out[Y] = self._target(frame[d.target], path, offset)
        if d.weight:
            out[W] = self._weight(frame, path, offset)
        keys = frame[cv.group] if cv.group else frame[d.id]
        out[FOLD] = hash_folds(keys.to_numpy(), cv.n_splits, cv.seed).astype(np.int8)
        out[PART] = (out[ROW].to_numpy().astype(np.uint64) * np.uint64(2654435761)
                     % np.uint64(2**32) % np.uint64(100)).astype(np.int8)
        self.fold_rows += np.bincount(out[FOLD], minlength=cv.n_splits)
        if self.classes:
            np.add.at(self.counts, (out[FOLD].to_numpy(), out[Y].to_numpy()), 1)
        else:
            np.add.at(self.counts[:, 0], out[FOLD].to_numpy(), out[Y].to_numpy())
        return out

    def _target(self, target: pd.Series, path: Path, offset: int) -> np.ndarray:
        name = self.cfg.data.target
        if self.classes:
            return pd.Index(self.classes).get_indexer(target).astype(np.int64)
        y = pd.to_numeric(target, errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(y)
        if bad.any():
            row = offset + int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: target {name!r} is missing or not a number in row {row} "
                            f"({target.iloc[int(np.flatnonzero(bad)[0])]!r}); fix or drop it")
        return y

    def _weight(self, frame: pd.DataFrame, path: Path, offset: int) -> np.ndarray:
        """data.weight's column of a batch, checked as kit/data/weights.py checks a table."""
        values = weight_values(frame, self.cfg.data.weight, str(path), offset)
        self.weight_total += float(values.sum())
        return values

    def balance(self) -> pd.DataFrame:
        rows = self.fold_rows
        if not self.classes:
            return pd.DataFrame({"rows": rows, "target_mean": self.counts[:, 0] / np.maximum(rows, 1)})
        shares = self.counts / np.maximum(rows, 1)[:, None]
        table = pd.DataFrame(shares, columns=[f"share_{c}" for c in self.classes])
        table.insert(0, "rows", rows)
        return table


def _nullable_filled(schema: pa.Schema, source: pa.Schema) -> pa.Schema:
    """A column that is all missing in the first batch gets its source type, or string."""
    fields = []
    for f in schema:
        if pa.types.is_null(f.type):
            f = f.with_type(source.field(f.name).type if f.name in source.names else pa.string())
        fields.append(f)
    return pa.schema(fields)


def _cast(table: pa.Table, schema: pa.Schema, path: Path, offset: int) -> pa.Table:
    if table.schema.equals(schema):
        return table
    if table.schema.names != schema.names:
        raise DataError(f"{path}: rows from {offset} give columns {table.schema.names[:8]}, the "
                        f"first rows {schema.names[:8]}; features.py transform_batch must return "
                        "the same columns for every batch")
    for name in schema.names:
        want, got = schema.field(name).type, table.schema.field(name).type
        if want != got and not pa.types.is_null(got):
            try:
                table = table.set_column(schema.get_field_index(name), name,
                                         table.column(name).cast(want))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(f"{path}: column {name!r} holds {got} from row {offset} on, "
                                f"{want} before; set data.dtypes = {{{name!r} = \"string\"}} "
                                "(or float64) in config.toml") from None
    return table.cast(schema)


def scan(path: Path, columns: list[str], fold: int, *, valid: bool, parts: int = 100
         ) -> Iterator[pd.DataFrame]:
    """The fold's training rows (valid=False) or validation rows (with `parts` < 100: the
    validation rows whose PART is below it), in file order."""
    for batch in pq_batches([path], [*columns, FOLD, PART]):
        rows = batch.filter(rows_mask(batch, fold, valid, parts))
        if rows.num_rows:
            yield rows.select(columns).to_pandas()


def rows_mask(table, fold: int, valid: bool, parts: int = 100):
    """The fold's training rows, or its validation rows with PART below `parts`."""
    if not valid:
        return pc.not_equal(table[FOLD], fold)
    mask = pc.equal(table[FOLD], fold)
    return pc.and_(mask, pc.less(table[PART], parts)) if parts < 100 else mask


def valid_parts(st: Streamed, fold: int) -> int:
    """Early stopping (a network's epochs, a booster's rounds) watches at most about
    VALID_ROWS of the fold's validation rows: those whose PART is below this. The fold's
    score and OOF cover them all."""
    return min(100, int(np.ceil(100 * VALID_ROWS / max(int(st.fold_rows[fold]), 1))))
