"""TabularStream: parquet -> record batches -> one vectorized transform per chunk -> batches.

Big tabular competitions ship tens of millions of rows in hundreds of columns, split into
parquet files by date. The stream reads only `columns` (and rows passing `filter`), joins
record batches into chunks of `chunk_rows` rows (default: about 4M values, e.g. 16,777 rows
of 250 columns), calls `transform` once per chunk and yields `dict[str, torch.Tensor]`
batches that are zero-copy views of the chunk's arrays. Memory is a few chunks, whatever
the dataset size. Sources: a folder of parquet files (hive partitions such as
`date=2024-06-01/` become columns you may ask for), one parquet file, a list of them, or a
CSV converted once with `as_parquet` (kit/data/parquet_files.py).

    stream = TabularStream("data/train_parquet", columns=cols, transform=fitted, batch_size=512,
                           shuffle=True, filter=pc.field("fold") != k)
    loader = stream_loader(stream, num_workers=2)
    for epoch in range(epochs):
        stream.set_epoch(epoch)             # before iter(loader), as with DistributedSampler
        for batch in loader: ...

Sharding. The unit of work is one parquet row group, or an equal row slice of one when
there are fewer row groups than shards. Shards are DDP ranks x DataLoader workers (shard =
rank * workers + worker). Each epoch the units are permuted with (seed, epoch) and dealt in
that order, each to the shard holding the fewest rows so far, so every row belongs to
exactly one shard and shards differ by at most one unit. With shuffle=False and one shard
the order is the file order (sorted paths, or the list as given).

DDP ranks must take the same number of steps, or an all-reduce waits forever.
ddp_even="pad": ranks short of the longest rank's batch count add full batches of rows
repeated from their own shards (cycling through the first rows they read), spread evenly
over their workers. ddp_even="drop": longer ranks stop at the shortest rank's count (the
fullest workers stop first); the dropped rows differ every epoch. With one rank neither
applies: every row exactly once.

String columns with few distinct values (judged from the footers: a dictionary page of at
most half the column chunk) reach `transform` as pandas Categorical: read as Arrow
dictionaries, the way parquet stores them, no Python string per value. Comparisons,
`.str`, `isin`, `to_numpy()` and `kit.data.tabular`'s preprocessors work on them as on
strings; writing a new value (`fillna("none")`, `s + "_x"`) needs `.astype(str)` first,
or `categorical_strings=False` for plain strings. A filter using string functions
(`starts_with`, `utf8_length`) keeps the columns plain.

Bad input fails at construction, naming the file: a configured column missing from a file,
a column whose dtype differs between files, a file that is not parquet. Empty partition
folders and 0-row files are skipped with a warning. Pages corrupted behind a good footer
fail when read, as a DataError naming the file (raised in the main process, also from a
DataLoader worker).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from kit.data.parquet_files import dictionary_schema, discover, read_footers, reading
from kit.data.shards import Unit, batch_count, batch_quotas, deal_units, make_units
from kit.data.stream_stages import Transform, ahead, checked_arrays, repeat_rows, to_frames
from kit.errors import ConfigError
from kit.runtime.seed import worker_init_fn

DDP_EVEN = ("pad", "drop")
_LOCAL = pafs.LocalFileSystem()
# pre_buffer=False + a buffered stream: read a row group page by page instead of holding all
# its column chunks, so memory follows chunk_rows even for 1M-row row groups.
_SCAN = ds.ParquetFragmentScanOptions(pre_buffer=False, use_buffered_stream=True,
                                      buffer_size=1 << 20)


class TabularStream(IterableDataset):
    """Streams parquet rows as pre-batched tensors, sharded over DDP ranks and workers.

    `transform` gets each chunk as a pandas DataFrame of `columns` and returns a dict of
    numpy arrays with one row per input row (e.g. {"x_num": .., "x_cat": .., "y": ..}); it
    must be picklable (a module-level function or a fitted object) to reach spawned workers.
    """

    def __init__(self, source: str | Path | Sequence[str | Path], *, columns: Sequence[str],
                 transform: Transform, batch_size: int, chunk_rows: int | None = None,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                 filter: pc.Expression | None = None, rank: int | None = None,
                 world_size: int | None = None, ddp_even: str = "pad",
                 categorical_strings: bool = True) -> None:
        super().__init__()
        _check_options(columns, transform, batch_size, chunk_rows, ddp_even)
        self.columns, self.transform = list(columns), transform
        self.batch_size = int(batch_size)
        self.chunk_rows = (_default_chunk_rows(len(self.columns)) if chunk_rows is None
                           else int(chunk_rows))
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.filter, self.ddp_even = filter, ddp_even
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        # Only paths, row counts, the schema and partition expressions are kept: files are
        # opened by the shard that reads them, never here (an Arrow handle opened before a
        # fork breaks in the child, apache/arrow#1946).
        self._files, self._group_rows, self._partitions, schema, small = read_footers(
            *discover(source), self.columns)
        _check_filter(filter, schema)
        # low-cardinality string columns are read as Arrow dictionaries, the way parquet
        # stores them: no string built per value (half the read time of a 250-column table
        # with 15 such columns), and pandas gets a Categorical
        strings = [c for c in self.columns if c in small] if categorical_strings else []
        self._schema = dictionary_schema(schema, strings)
        if strings and filter is not None and _filter_error(filter, self._schema):
            self._schema, strings = schema, []  # string kernels (starts_with) need strings
        self._format = ds.ParquetFileFormat(
            read_options=ds.ParquetReadOptions(dictionary_columns=strings),
            default_fragment_scan_options=_SCAN)
        self._num_workers = 0  # DataLoader workers per rank; stream_loader sets it
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # seen by live workers
        self._cache: dict[tuple, list] = {}

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's order; reaches persistent workers through shared memory."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        """Batches this rank yields in the current epoch (with a filter: counts it once)."""
        units, shards, quotas = self._plan(int(self._epoch))
        workers = max(1, self._num_workers)
        mine = range(self.rank * workers, (self.rank + 1) * workers)
        if quotas is not None:
            return sum(quotas[s][0] for s in mine)
        rows = self._unit_rows(units)
        return sum(batch_count(sum(rows[u] for u in shards[s]), self.batch_size, self.drop_last)
                   for s in mine)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch, workers, info = int(self._epoch), max(1, self._num_workers), get_worker_info()
        if info is None:  # main process: this rank's worker shards one after another
            ids = range(workers)
        elif info.num_workers == workers:
            ids = [info.id]
        else:
            raise ConfigError(
                f"TabularStream was prepared for {self._num_workers} DataLoader workers but "
                f"runs in {info.num_workers}: len() and the DDP batch counts would be wrong. "
                f"Build the loader with stream_loader(stream, num_workers={info.num_workers}).")
        for worker in ids:
            yield from self._iter_shard(epoch, self.rank * workers + worker)

    # -- planning: which units each shard reads, and how many batches it yields ----------

    def _units(self) -> list[Unit]:
        n_shards = self.world_size * max(1, self._num_workers)
        key = ("units", n_shards)
        if key not in self._cache:
            self._cache[key] = make_units(self._group_rows, n_shards)
        return self._cache[key]

    def _unit_rows(self, units: list[Unit]) -> list[int]:
        """Rows each unit yields after `filter`; reads only the filter's columns, once."""
        if self.filter is None:
            return [end - start for _, _, start, end in units]
        key = ("rows", len(units))  # units differ only when their number does
        if key not in self._cache:
            masks: dict[tuple[int, int], pa.ChunkedArray] = {}
            for f, g, _, _ in units:
                if (f, g) not in masks:
                    with reading(self._files[f]):
                        masks[f, g] = self._fragment(f, g).to_table(
                            schema=self._schema, columns={"keep": self.filter},
                            use_threads=False)["keep"]
            self._cache[key] = [
                int(pc.sum(pc.fill_null(masks[f, g].slice(a, b - a), False)).as_py() or 0)
                for f, g, a, b in units]
        return self._cache[key]

    def _plan(self, epoch: int) -> tuple[list[Unit], list[list[int]], list | None]:
        """The units, each shard's unit indices, and (batches, padding) per shard under DDP."""
        units, workers = self._units(), max(1, self._num_workers)
        order = (np.random.default_rng([self.seed, epoch]).permutation(len(units))
                 if self.shuffle else range(len(units)))
        shards = deal_units([b - a for _, _, a, b in units], order, self.world_size * workers)
        if self.world_size == 1:
            return units, shards, None
        rows = self._unit_rows(units)
        shard_rows = [sum(rows[u] for u in shard) for shard in shards]
        quotas = batch_quotas(shard_rows, workers, self.batch_size, self.drop_last, self.ddp_even)
        return units, shards, quotas

    # -- reading: units -> record batches -> chunks -> arrays -> batches ------------------

    def _iter_shard(self, epoch: int, shard: int) -> Iterator[dict[str, torch.Tensor]]:
        units, shards, quotas = self._plan(epoch)
        rng = np.random.default_rng([self.seed, epoch, shard])
        # three stages in background threads (parquet read; Arrow -> pandas; transform and
        # shuffle), one chunk in each slot, so the caller's thread only slices batches: an
        # epoch takes about the slowest stage, not their sum
        tables = ahead(self._read([units[u] for u in shards[shard]]))
        frames = ahead(to_frames(tables))
        chunks = ahead(self._arrays(frames, rng))

        def stop() -> None:  # each stage joins its thread; also when a transform raised,
            for stage in (chunks, frames, tables):  # whose traceback would keep them alive
                try:
                    stage.close()
                except ValueError:  # "generator already executing": a Ctrl-C / SIGTERM
                    pass  # landed inside this stage, which is unwinding and joins itself

        try:
            batches = self._batches(chunks)
            if quotas is None:
                yield from batches
                return
            quota, pad = quotas[shard]
            want, kept, have = min(pad * self.batch_size, self.chunk_rows), [], 0  # to repeat
            for batch in itertools.islice(batches, quota - pad):
                if have < want:  # cloned: a view would pin its whole chunk for the epoch
                    kept.append({k: v[:want - have].clone() for k, v in batch.items()})
                    have += len(next(iter(kept[-1].values())))
                yield batch
            stop()  # drop mode: stop reading what this rank gives up
            if pad:
                pool = ({k: torch.cat([part[k] for part in kept]) for k in kept[0]}
                        if kept else self._borrowed_rows(units, want))
                yield from repeat_rows(pool, pad, self.batch_size)
        finally:
            stop()

    def _borrowed_rows(self, units: list[Unit], want: int) -> dict[str, torch.Tensor]:
        """Padding rows for a shard that `filter` left empty: the first rows of the data."""
        arrays = next(self._arrays(to_frames(self._read(units)), None))
        return {k: torch.from_numpy(a[:want]) for k, a in arrays.items()}

    def _fragment(self, f: int, group: int) -> ds.ParquetFileFragment:
        return self._format.make_fragment(self._files[f], filesystem=_LOCAL,
                                          row_groups=[group],
                                          partition_expression=self._partitions[f])

    def _read(self, units: list[Unit]) -> Iterator[pa.Table]:
        """Chunks of exactly chunk_rows rows (the last may be short) read from `units`."""
        held: list[pa.RecordBatch] = []
        n = 0
        for batch in itertools.chain.from_iterable(self._read_unit(u) for u in units):
            while batch.num_rows:
                take = min(batch.num_rows, self.chunk_rows - n)
                held.append(batch.slice(0, take))
                batch, n = batch.slice(take), n + take
                if n == self.chunk_rows:
                    yield pa.Table.from_batches(held)
                    held, n = [], 0
        if n:
            yield pa.Table.from_batches(held)

    def _read_unit(self, unit: Unit) -> Iterator[pa.RecordBatch]:
        f, group, start, end = unit
        schema = self._schema
        with reading(self._files[f]):
            fragment = self._fragment(f, group)
            if (start, end) == (0, self._group_rows[f][group]):
                # batch_readahead=1: one record batch decoded ahead, not 16 (memory)
                yield from fragment.to_batches(
                    schema=schema, columns=self.columns, filter=self.filter,
                    batch_size=self.chunk_rows, batch_readahead=1, fragment_readahead=1)
                return
            # A slice of a row group (more shards than row groups: small data). Row
            # positions must be kept, so read the group whole and apply the filter after.
            wanted = {c: pc.field(c) for c in self.columns}
            if self.filter is not None:
                wanted["__keep"] = self.filter
            table = fragment.to_table(schema=schema, columns=wanted, use_threads=False)
            table = table.slice(start, end - start)
            if self.filter is not None:
                table = table.filter(pc.fill_null(table["__keep"], False))
            out = pa.schema([schema.field(c) for c in self.columns])
            yield from pa.Table.from_arrays([table[c] for c in self.columns],
                                            schema=out).to_batches()

    def _arrays(self, frames: Iterator[pd.DataFrame], rng: np.random.Generator | None
                ) -> Iterator[dict[str, np.ndarray]]:
        """One transform call per chunk; rows permuted in the final arrays when shuffling."""
        for frame in frames:
            rows = len(frame)
            arrays = checked_arrays(self.transform(frame), rows, self.transform)
            del frame
            if self.shuffle and rng is not None:
                perm = rng.permutation(rows)
                # np.take on the final (narrow, numeric) arrays, never DataFrame.sample;
                # its output has rows contiguous whatever the input's layout
                arrays = {k: np.take(a, perm, axis=0) for k, a in arrays.items()}
            else:  # batches are row slices: rows contiguous (a no-op when they are)
                arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
            yield arrays

    def _batches(self, chunks: Iterator[dict[str, np.ndarray]]
                 ) -> Iterator[dict[str, torch.Tensor]]:
        """Slice chunks into batch_size views; a chunk's tail joins the next chunk's head."""
        size, carry = self.batch_size, None
        for arrays in chunks:
            n, start = len(next(iter(arrays.values()))), 0
            if carry is not None:
                start = min(size - len(next(iter(carry.values()))), n)
                carry = {k: np.concatenate([carry[k], a[:start]]) for k, a in arrays.items()}
                if len(next(iter(carry.values()))) < size:
                    continue
                yield {k: torch.from_numpy(a) for k, a in carry.items()}
                carry = None
            for lo in range(start, n - size + 1, size):
                yield {k: torch.from_numpy(a[lo:lo + size]) for k, a in arrays.items()}
            tail = start + (n - start) // size * size
            if tail < n:  # copied, so the finished chunk can be freed
                carry = {k: a[tail:].copy() for k, a in arrays.items()}
        if carry is not None and not self.drop_last:
            yield {k: torch.from_numpy(a) for k, a in carry.items()}


def stream_loader(stream: TabularStream, *, num_workers: int = 0, **kw: Any) -> DataLoader:
    """DataLoader over a pre-batched TabularStream (batch_size=None), sharded per worker.

    Workers start with "spawn", not Linux's default "fork": a forked child inherits Arrow's
    thread pools and open files in whatever state the parent had them, and Arrow readers
    then fail or deadlock (apache/arrow#1946, Lightning-AI/litData#823). Spawn costs a few
    seconds of imports per worker, paid once because workers are persistent. Records
    num_workers on `stream`, so len(stream) == len(loader). Keyword args go to DataLoader.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "rows.parquet"
    >>> pd.DataFrame({"x": np.arange(10.0)}).to_parquet(path)
    >>> stream = TabularStream(path, columns=["x"], batch_size=4,
    ...                        transform=lambda f: {"x": f["x"].to_numpy(np.float32)})
    >>> loader = stream_loader(stream, num_workers=0)  # workers: the transform must pickle
    >>> [len(batch["x"]) for batch in loader], len(loader)
    ([4, 4, 2], 3)
    """
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers={num_workers!r}: use an integer >= 0")
    if kw.get("batch_size") is not None:
        raise ConfigError(f"batch_size={kw['batch_size']!r} for a TabularStream loader: the "
                          "stream is already batched; set batch_size on the TabularStream")
    stream._num_workers = num_workers
    if stream.world_size > 1:  # the batch counts need per-unit row counts: once, here
        stream._unit_rows(stream._units())
    opts: dict[str, Any] = {"batch_size": None, "num_workers": num_workers}
    if num_workers:
        opts.update(persistent_workers=True, multiprocessing_context="spawn",
                    worker_init_fn=worker_init_fn)
    return DataLoader(stream, **(opts | kw))


# -- helpers: options, discovery, footers ---------------------------------------------------

def _default_chunk_rows(n_columns: int) -> int:
    """About 4M values per chunk (16 MiB of float32): 65,536 rows of 64 columns, 16,777 of
    250. Throughput is flat from here up, while memory grows with every in-flight chunk."""
    return max(4096, min(65536, (1 << 22) // n_columns))


def _check_options(columns, transform, batch_size, chunk_rows, ddp_even) -> None:
    if isinstance(columns, str) or not columns or len(set(columns)) != len(columns):
        raise ConfigError(f"columns={columns!r}: give a non-empty list of distinct names")
    if not callable(transform):
        raise ConfigError(f"transform={transform!r} is not callable; pass a function "
                          "pandas.DataFrame -> dict[str, numpy.ndarray]")
    for name, value in (("batch_size", batch_size), ("chunk_rows", 1 if chunk_rows is None else chunk_rows)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r}: use an integer >= 1")
    if ddp_even not in DDP_EVEN:
        raise ConfigError(f"ddp_even={ddp_even!r}: choose one of {list(DDP_EVEN)}")


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    live = torch.distributed.is_available() and torch.distributed.is_initialized()
    world = world_size if world_size is not None else (
        torch.distributed.get_world_size() if live else 1)
    rank = rank if rank is not None else (torch.distributed.get_rank() if live else 0)
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"rank={rank}, world_size={world}: need 0 <= rank < world_size")
    return rank, world


def _check_filter(expr: pc.Expression | None, schema: pa.Schema) -> None:
    error = None if expr is None else _filter_error(expr, schema)
    if error:
        raise ConfigError(f"filter {expr} does not apply to the data ({error}); columns "
                          f"available: {schema.names}")


def _filter_error(expr: pc.Expression, schema: pa.Schema) -> str | None:
    """Why `expr` cannot filter rows of `schema`, or None when it can."""
    try:
        schema.empty_table().filter(expr)
    except (pa.ArrowException, TypeError) as err:
        return str(err)
    return None
