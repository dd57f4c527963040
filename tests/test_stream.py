"""TabularStream: exactly-once sharding over workers x ranks, seeded order, projection, bad input.

Worker cases run real DataLoader workers. Most use the "fork" start method (milliseconds to
start, where "spawn", stream_loader's default, costs seconds of imports per worker); one
test runs the default spawn path with persistent workers over two epochs.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kit.data.parquet_files import as_parquet
from kit.data.stream import TabularStream, stream_loader
from kit.errors import ConfigError, DataError

FORK = {"multiprocessing_context": "fork", "timeout": 60}  # timeout: a hang fails the test
SIZES = [30, 17, 41, 25]  # rows per partition of the "many" dataset: 13 row groups of <= 10


class Ids:
    """Test transform: row ids and one float feature; fails on any column not asked for."""

    def __init__(self, columns=("id", "x")):
        self.columns = list(columns)

    def __call__(self, frame: pd.DataFrame) -> dict:
        if list(frame.columns) != self.columns:
            raise AssertionError(f"transform got {list(frame.columns)}, not {self.columns}")
        return {"id": frame["id"].to_numpy(np.int64), "x": frame["x"].to_numpy(np.float32)}


def table(ids, **columns) -> pa.Table:
    ids = np.asarray(ids, np.int64)
    data = {"id": ids, "x": (ids * 0.5).astype(np.float32),
            "blob": [f"row-{i}" for i in ids]}  # never in `columns`: projection must skip it
    return pa.table({**data, **columns})


def write(path: Path, tbl: pa.Table, row_group_size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(tbl, path, row_group_size=row_group_size)
    return path


@pytest.fixture
def many(tmp_path) -> Path:
    """Hive-partitioned folder with more row groups (13) than the most shards (3 x 3)."""
    start = 0
    for day, n in enumerate(SIZES):
        write(tmp_path / "many" / f"day={day}" / "part-0.parquet", table(range(start, start + n)))
        start += n
    return tmp_path / "many"


@pytest.fixture
def few(tmp_path) -> Path:
    """One file with one row group of 23 rows: fewer fragments than shards."""
    return write(tmp_path / "few.parquet", table(range(100, 123)), row_group_size=1000)


def stream(source, **kw) -> TabularStream:
    opts = dict(columns=["id", "x"], transform=Ids(), batch_size=4, chunk_rows=8,
                shuffle=True, seed=3)
    return TabularStream(source, **(opts | kw))


def rank_batches(source, *, workers: int, world: int, epoch: int = 0, **kw) -> list[list]:
    """Per rank, the id arrays of the batches its loader yields in `epoch`."""
    ranks = []
    for rank in range(world):
        s = stream(source, rank=rank, world_size=world, **kw)
        loader = stream_loader(s, num_workers=workers, **(FORK if workers else {}))
        s.set_epoch(epoch)
        batches = [b["id"].numpy() for b in loader]
        assert len(batches) == len(loader) == len(s)  # len() is exact, never a guess
        ranks.append(batches)
    return ranks


def all_ids(source) -> set:
    return set(pq.read_table(source, columns=["id"])["id"].to_pylist())


# -- sharding: exactly once over DataLoader workers x DDP ranks ------------------------------

@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on 2 cores
@pytest.mark.parametrize("data", ["few", "many"])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_every_row_once_per_epoch_across_workers_and_ranks(data, world, workers, request):
    source = request.getfixturevalue(data)
    ranks = rank_batches(source, workers=workers, world=world, epoch=1)
    assert len({len(batches) for batches in ranks}) == 1  # same step count on every rank
    owned = [Counter(np.concatenate(b).tolist()) for b in ranks]
    mine = [set(c) for c in owned]
    assert sum(len(m) for m in mine) == len(set().union(*mine))  # ranks are disjoint
    assert set().union(*mine) == all_ids(source)  # and cover every row
    if world == 1:
        assert max(owned[0].values()) == 1  # one rank: every row exactly once
    # only each worker shard's last batch may be short: padding comes in full batches
    for batches in ranks:
        assert sum(len(b) < 4 for b in batches) <= max(1, workers)


@pytest.mark.parametrize("workers", [0, 2])
def test_ddp_drop_keeps_ranks_even_without_repeating_rows(many, workers):
    ranks = rank_batches(many, workers=workers, world=3, ddp_even="drop")
    assert len({len(batches) for batches in ranks}) == 1
    ids = np.concatenate([np.concatenate(b) for b in ranks]).tolist()
    assert len(ids) == len(set(ids)) and set(ids) <= all_ids(many)
    assert len(ids) > sum(SIZES) - 3 * 3 * 2 * 4  # at most a few batches per shard dropped


def test_filter_rows_are_split_evenly_over_ranks(many):
    keep = np.arange(0, sum(SIZES), 3)  # like a CV fold: every third row
    ranks = rank_batches(many, workers=0, world=2, filter=pc.field("id").isin(keep))
    assert len(ranks[0]) == len(ranks[1])
    seen = [set(np.concatenate(b).tolist()) for b in ranks]
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(keep.tolist())


def test_spawned_persistent_workers_follow_set_epoch(many):
    """The default loader (spawn, persistent workers) yields what the main process would."""
    s = stream(many, world_size=2, rank=1)
    loader = stream_loader(s, num_workers=1, timeout=120)
    orders = []
    for epoch in (0, 1):
        s.set_epoch(epoch)  # after the workers started: reaches them through shared memory
        got = [b["id"].tolist() for b in loader]
        assert got == [b["id"].tolist() for b in s] and len(got) == len(s)
        orders.append(got)
    assert orders[0] != orders[1]


def test_loader_with_other_worker_count_is_refused(many):
    s = stream(many)
    stream_loader(s, num_workers=2)
    from torch.utils.data import DataLoader

    with pytest.raises(ConfigError, match="stream_loader"):
        list(DataLoader(s, batch_size=None, num_workers=1, **FORK))


# -- order: two-level shuffle, seeded per (seed, epoch) ----------------------------------------

def ids_in_order(source, epoch: int, **kw) -> list[int]:
    s = stream(source, **kw)
    s.set_epoch(epoch)
    return [i for b in s for i in b["id"].tolist()]


def test_order_is_fixed_by_seed_and_epoch(many):
    first = ids_in_order(many, 0)
    assert first == ids_in_order(many, 0)  # a fresh stream, same seed and epoch
    assert sorted(first) == sorted(all_ids(many))
    assert first != ids_in_order(many, 1) and first != ids_in_order(many, 0, seed=4)
    # inside a chunk rows are permuted, not only the order of the row groups
    assert first[:8] != sorted(first[:8]) or first[8:16] != sorted(first[8:16])


def test_no_shuffle_reads_file_order(many):
    assert ids_in_order(many, 5, shuffle=False) == sorted(all_ids(many))


def test_batches_are_zero_copy_views_of_a_chunk(many):
    batches = list(stream(many, batch_size=2, chunk_rows=8, shuffle=False))
    starts = [b["x"].data_ptr() for b in batches[:4]]
    # four batches of one 8-row chunk are consecutive slices of one float32 array
    assert np.diff(starts).tolist() == [2 * 4] * 3


# -- sources and projection -----------------------------------------------------------------

def test_hive_partition_column_can_be_read(many):
    s = stream(many, columns=["id", "x", "day"], shuffle=False,
               transform=lambda f: {"id": f["id"].to_numpy(), "day": f["day"].to_numpy()})
    rows = {int(i): int(d) for b in s for i, d in zip(b["id"], b["day"])}
    assert rows[0] == 0 and rows[SIZES[0]] == 1 and rows[sum(SIZES) - 1] == len(SIZES) - 1


@pytest.fixture
def strings(tmp_path) -> Path:
    """600 rows in row groups of 200: `s` with 4 values and nulls (string), `t` with 3
    (large_string, as pandas 3 writes), `u` unique per row (an id-like string), after a
    struct column (two parquet leaves for one field: leaf and field indices differ)."""
    rng = np.random.default_rng(0)
    ids = np.arange(600)
    words = np.array(["a", "b", "c", None, "dd"], dtype=object)[rng.integers(0, 5, 600)]
    extra = dict(nested=pa.array([{"a": int(i), "b": "x"} for i in ids]),
                 s=pa.array(words, pa.string()),
                 t=pa.array([f"t{i % 3}" for i in ids], pa.large_string()),
                 u=pa.array([f"user-{i:06d}" for i in rng.permutation(600)], pa.string()))
    return write(tmp_path / "s.parquet", table(ids, **extra), 200)


def test_low_cardinality_strings_arrive_as_categoricals_and_encode_like_pandas(strings):
    """Strings with small dictionaries are read as Arrow dictionaries (one per row group,
    so chunks join different dictionaries): the transform sees Categoricals with the
    file's values and nulls, and the kit's encoder gives the codes it gives the pandas
    frame. The id-like column stays plain strings."""
    from kit.data.tabular import CategoricalPreprocessor

    full = pq.read_table(strings).to_pandas()
    encoder = CategoricalPreprocessor().fit(full.iloc[:300], ["s", "t", "u"])
    seen = []

    def transform(frame):
        seen.append({c: isinstance(frame[c].dtype, pd.CategoricalDtype) for c in "stu"})
        return {"id": frame["id"].to_numpy(), "codes": encoder.transform(frame),
                "null": frame["s"].isna().to_numpy()}

    got = {int(i): (c.tolist(), bool(n))
           for b in stream(strings, columns=["id", "s", "t", "u"], chunk_rows=250,
                           transform=transform)
           for i, c, n in zip(b["id"], b["codes"], b["null"])}
    assert seen and all(kinds == {"s": True, "t": True, "u": False} for kinds in seen)
    expected = encoder.transform(full)
    assert got == {i: (expected[i].tolist(), bool(pd.isna(full["s"][i]))) for i in range(600)}


@pytest.mark.parametrize("how", ["categorical_strings=False", "string-function filter"])
def test_strings_stay_plain_when_asked_or_when_the_filter_needs_them(strings, how):
    kinds = set()

    def transform(frame):
        kinds.add(type(frame["s"].dtype).__name__)
        return {"id": frame["id"].to_numpy()}

    opts = ({"categorical_strings": False} if how.startswith("categorical")
            else {"filter": pc.starts_with(pc.field("s"), "d")})
    ids = [int(i) for b in stream(strings, columns=["id", "s"], transform=transform, **opts)
           for i in b["id"]]
    assert kinds == {"StringDtype"}
    full = pq.read_table(strings).to_pandas()
    assert sorted(ids) == (list(range(600)) if "filter" not in opts
                           else full.index[full["s"] == "dd"].tolist())


def test_a_failing_transform_stops_every_reading_thread(many):
    import threading
    import time

    def readers():
        return {t for t in threading.enumerate() if t.name == "TabularStream-read"} - before

    def boom(frame):
        raise ValueError("feature bug")

    before = {t for t in threading.enumerate() if t.name == "TabularStream-read"}
    with pytest.raises(ValueError, match="feature bug") as caught:
        next(iter(stream(many, chunk_rows=4, transform=boom)))
    deadline = time.monotonic() + 5  # the traceback (held by `caught`) keeps the generators
    while readers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert caught.value and not readers()


def corrupt_column(path: Path, column: str) -> None:
    """Overwrite the data pages of `column` (footer intact): only reading it can fail."""
    meta = pq.read_metadata(path)
    j = meta.schema.to_arrow_schema().get_field_index(column)
    with open(path, "r+b") as fh:
        for g in range(meta.num_row_groups):
            chunk = meta.row_group(g).column(j)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            fh.seek(start)
            fh.write(b"\xff" * chunk.total_compressed_size)


def test_projection_never_reads_other_columns(few):
    corrupt_column(few, "blob")
    with pytest.raises((OSError, pa.ArrowException)):
        pq.read_table(few)  # the file really is unreadable as a whole
    ids = [i for b in stream(few) for i in b["id"].tolist()]  # Ids() checks the columns too
    assert sorted(ids) == list(range(100, 123))


def test_corrupt_pages_name_the_file_even_from_a_worker(few):
    corrupt_column(few, "x")
    with pytest.raises(DataError, match="few.parquet"):
        list(stream(few))
    s = stream(few)  # one worker: torch waits 5 s per worker to join after an error
    with pytest.raises(DataError, match="few.parquet"):
        list(stream_loader(s, num_workers=1, **FORK))


def test_csv_is_converted_once(tmp_path):
    csv = tmp_path / "train.csv"
    pd.DataFrame({"id": range(50), "x": np.linspace(0, 1, 50), "s": ["a", "b"] * 25}).to_csv(
        csv, index=False)
    first = as_parquet(csv, tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert as_parquet(csv, tmp_path / "cache") == first and first.stat().st_mtime_ns == stamp
    ids = [i for b in stream(first, shuffle=False) for i in b["id"].tolist()]
    assert ids == list(range(50))
    with pytest.raises(DataError, match="nope.csv"):
        as_parquet(tmp_path / "nope.csv", tmp_path / "cache")


# -- bad input: clear errors naming the file, or a warning and a skip ------------------------

def test_column_missing_from_one_file_names_file_and_column(tmp_path):
    write(tmp_path / "d" / "a.parquet", table(range(5)))
    write(tmp_path / "d" / "b.parquet", table(range(5, 9)).drop_columns(["x"]))
    with pytest.raises(DataError, match=r"column 'x' is missing from .*b\.parquet"):
        stream(tmp_path / "d")


def test_mixed_dtypes_across_partitions_name_both_files(tmp_path):
    write(tmp_path / "d" / "k=1" / "p.parquet", table(range(5)))
    ids = np.arange(5, 9)
    write(tmp_path / "d" / "k=2" / "p.parquet",
          table(ids).set_column(1, "x", pa.array([str(i) for i in ids])))
    with pytest.raises(DataError, match=r"'x' is float in .*k=1.* but string in .*k=2"):
        stream(tmp_path / "d")


def test_empty_partitions_are_skipped_with_a_warning(many):
    (many / "day=8").mkdir()  # a partition folder with no files
    write(many / "day=9" / "part-0.parquet", table([]))  # a file with no rows
    with pytest.warns(UserWarning) as caught:
        s = stream(many)
    text = " ".join(str(w.message) for w in caught)
    assert "day=8" in text and "day=9" in text
    ids = [i for b in s for i in b["id"].tolist()]
    assert sorted(ids) == sorted(all_ids(many))


def test_truncated_file_names_the_file(many):
    path = many / "day=1" / "part-0.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"day=1.part-0\.parquet is not a readable parquet"):
        stream(many)


def test_bad_options_say_the_fix(many, tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no parquet files"):
        stream(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="ddp_even"):
        stream(many, ddp_even="wait")
    with pytest.raises(ConfigError, match="rank=2, world_size=2"):
        stream(many, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="already batched"):
        stream_loader(stream(many), batch_size=32)
    bad = stream(many, transform=lambda f: {"id": f["id"].to_numpy()[:-1]})
    with pytest.raises(DataError, match="one row per input row"):
        next(iter(bad))


def test_abandoned_epoch_stops_its_reader_thread(many):
    import threading
    import time

    def readers():  # other tests' abandoned iterators may still be winding down
        return {t for t in threading.enumerate() if t.name == "TabularStream-read"} - before

    before = {t for t in threading.enumerate() if t.name == "TabularStream-read"}
    it = iter(stream(many, chunk_rows=4))
    next(it)
    assert readers()  # reading ahead in the background...
    it.close()
    deadline = time.monotonic() + 5
    while readers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not readers()  # ...and stopped with the epoch: no thread left to hang on
