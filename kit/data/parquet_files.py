"""The parquet files a TabularStream reads: which files (a folder with hive partitions, a
file, a list), their footers read once (row groups, one dtype per column, the string
columns cheap to read as dictionaries), read errors naming the file, and a CSV converted
once to parquet (as_parquet)."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from kit.errors import DataError
from kit.io import atomic_path

SUFFIXES = (".parquet", ".parq", ".pq")
ROW_GROUP_ROWS = 65536  # row groups written by as_parquet: the unit of sharding and shuffling


def as_parquet(csv_path: str | Path, cache_dir: str | Path, *,
               columns: Sequence[str] | None = None,
               column_types: dict[str, pa.DataType] | None = None) -> Path:
    """Convert a CSV once to parquet (streamed, bounded memory); reused while newer than it.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "train.csv").write_text("id,x\\n1,0.5\\n2,1.5\\n")
    >>> path = as_parquet(folder / "train.csv", folder / "cache")
    >>> path.name, pq.read_table(path).to_pydict()
    ('train.csv.parquet', {'id': [1, 2], 'x': [0.5, 1.5]})
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"CSV file not found: {csv_path}; download the competition data first")
    tag = "" if columns is None else "." + hashlib.sha1("\0".join(columns).encode()).hexdigest()[:8]
    dest = Path(cache_dir) / f"{csv_path.name}{tag}.parquet"
    if dest.is_file() and dest.stat().st_mtime > csv_path.stat().st_mtime:
        return dest
    convert = pacsv.ConvertOptions(column_types=column_types or {})
    if columns is not None:
        convert.include_columns = list(columns)
    try:
        with atomic_path(dest) as tmp:
            # 16 MiB blocks: column types are inferred from the first block
            reader = pacsv.open_csv(csv_path, convert_options=convert,
                                    read_options=pacsv.ReadOptions(block_size=16 << 20))
            with pq.ParquetWriter(tmp, reader.schema) as writer:
                for batch in reader:
                    writer.write_table(pa.Table.from_batches([batch]), ROW_GROUP_ROWS)
    except (pa.ArrowException, OSError) as err:
        raise DataError(
            f"cannot convert {csv_path} to parquet: {err}. If a column changes type part-way "
            "through the file (integers, then '1.5' or text), pass column_types="
            "{'<column>': pa.float64()} (or pa.string()) to as_parquet.") from None
    return dest


def discover(source: str | Path | Sequence[str | Path]) -> tuple[list[str], str | None]:
    """Parquet files in read order, and the hive-partition root when `source` is a folder."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        root, files = os.path.abspath(source), []
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")))
            found = sorted(n for n in names if n.endswith(SUFFIXES) and n[0] not in "._")
            files += [os.path.join(folder, n) for n in found]
            if not found and not subfolders and folder != root:
                warnings.warn(f"empty partition {folder}: no parquet files in it; skipped",
                              stacklevel=4)
        if not files:
            raise DataError(f"no parquet files ({', '.join(SUFFIXES)}) under {root}; for a "
                            "CSV, convert it first with kit.data.parquet_files.as_parquet")
        return files, root
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing or not paths:
        raise DataError(f"parquet source {missing or paths} not found; pass a folder, a "
                        "parquet file or a list of parquet files")
    return [os.path.abspath(p) for p in paths], None


def read_footers(files: list[str], root: str | None, columns: list[str]
             ) -> tuple[list[str], list[list[int]], list, pa.Schema, set[str]]:
    """Read every footer once: skip empty files, check columns exist with one dtype each.
    Also the string columns with small dictionaries in every file (small_dictionaries)."""
    kept, group_rows, schemas, small = [], [], [], set(columns)
    for path in files:
        md = footer(path)
        if md is None or md.num_rows == 0:
            warnings.warn(f"empty parquet file {path} (0 rows); skipped", stacklevel=4)
            continue
        kept.append(path)
        group_rows.append([md.row_group(g).num_rows for g in range(md.num_row_groups)])
        schemas.append(md.schema.to_arrow_schema())
        small = small_dictionaries(md, schemas[-1], small)
    if not kept:
        raise DataError(f"every parquet file in {root or files} is empty; nothing to stream")
    dataset = ds.dataset(kept, format="parquet", partitioning="hive" if root else None,
                         partition_base_dir=root)
    partitions = {f.path: f.partition_expression for f in dataset.get_fragments()}
    first: dict[str, tuple[pa.DataType, str]] = {}
    for path, schema in zip(kept, schemas):
        keys = ds.get_partition_keys(partitions[path]) if path in partitions else {}
        for col in (c for c in columns if c not in keys):
            if schema.get_field_index(col) < 0:
                raise DataError(f"column {col!r} is missing from {path} (it has "
                                f"{schema.names[:12]}...); drop {col!r} from columns or "
                                "rewrite that file with it")
            dtype = schema.field(col).type
            seen, where = first.setdefault(col, (dtype, path))
            if dtype != seen:
                raise DataError(f"column {col!r} is {seen} in {where} but {dtype} in {path}; "
                                f"rewrite the files with one dtype (e.g. df[{col!r}]."
                                "astype('float32') before to_parquet)")
    return kept, group_rows, [partitions.get(p) for p in kept], dataset.schema, small


def dictionary_schema(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    """`schema` with `columns` typed as the dictionaries Arrow reads them as."""
    for c in columns:
        i = schema.get_field_index(c)
        schema = schema.set(i, schema.field(i).with_type(pa.dictionary(pa.int32(), pa.string())))
    return schema


def small_dictionaries(md: pq.FileMetaData, arrow: pa.Schema, candidates: set[str]
                        ) -> set[str]:
    """The string columns of `candidates` that every row group of the file stores
    dictionary-encoded with a dictionary page of at most half the column chunk: few
    distinct values, so reading them as dictionaries is cheap. Each record batch carries
    its row group's whole dictionary: for an id-like column that costs more than strings.
    Only the candidates' column chunks are looked at (the footers of 250-column files)."""
    small = {c for c in candidates if arrow.get_field_index(c) >= 0 and (
        pa.types.is_string(arrow.field(c).type) or pa.types.is_large_string(arrow.field(c).type))}
    leaf = {md.schema.column(j).path: j for j in range(len(md.schema))}  # nested fields: a.x
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        for c in list(small):
            chunk = group.column(leaf[c])
            start = chunk.dictionary_page_offset
            if start is None or 2 * (chunk.data_page_offset - start) > chunk.total_compressed_size:
                small.discard(c)
    return small


def footer(path: str) -> pq.FileMetaData | None:
    if os.path.getsize(path) == 0:
        return None
    try:
        return pq.read_metadata(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path} is not a readable parquet file ({err}); download or "
                        "regenerate it, or delete it to leave it out") from None


class reading:
    """Turn Arrow read failures into a DataError naming the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> None:
        if kind is not None and issubclass(kind, (pa.ArrowException, OSError)):
            raise DataError(f"{self.path} could not be read ({err}); the file is corrupt or "
                            "changed after the stream was built: regenerate it") from None
