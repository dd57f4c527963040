"""Benchmark: TabularStream against a per-row loader and against pyarrow's own read speed.

    python scripts/bench_tabular.py --rows 200000 --summary-json runs/bench_tabular.json

Generates (once, cached under --data-dir) a date-partitioned parquet dataset of --rows rows
x --cols columns (--cat-cols string categoricals, the rest numeric with 5% nulls; 50,000
rows per date) and measures rows/s of:
  naive        the per-row loader of the seed story: one-row DataFrame slice via iloc,
               StandardScaler / LabelEncoder called per row, one tensor per sample, default
               collate; timed on --naive-rows rows with the frame already in memory
  kit          TabularStream, shuffle=True, num_workers=0, transforming each chunk with
               kit.data.tabular's fitted NumericPreprocessor (median-impute + standardize
               in numpy) and CategoricalPreprocessor (the Categorical's codes + a lookup of
               its categories), as `train` does
  kit_workers  the same through stream_loader(num_workers=2), warm epochs only
  limit        pyarrow reading the same columns into numpy, no transform; categoricals
               read as dictionary codes, the cheapest form, so the floor is a generous one
Kit epochs and limit passes are taken in turns (--repeats pairs per kit loader, after a
first kit epoch that warms caches and starts workers): `fraction_of_limit` is the median
of the paired ratios, which cancels the drift of a shared machine's speed that a ratio
of two best-ofs taken minutes apart does not; rows/s figures are each loader's fastest
pass, and `fraction_of_limit_best_of` their ratio. Also measured: categorical
encoding alone (per-value apply(lambda) vs kit's CategoricalPreprocessor map) and the peak
RSS of a full kit epoch at N and 10 N rows, each in a fresh child process. Threads: the
kit's budget as `train` applies it (kit.runtime.threads, from the cores and --num-threads, 0 =
auto), for the kit and the limit alike; --no-thread-budget leaves every pool at its library
default, as a plain shell had them before. Progress goes to stderr; the last stdout line is
the JSON summary (with the thread counts under "threads"), also written to --summary-json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sklearn.preprocessing import LabelEncoder, StandardScaler
from threadpoolctl import threadpool_info
from torch.utils.data import DataLoader, IterableDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kit.data.stream import TabularStream, stream_loader  # noqa: E402
from kit.data.tabular import UNSEEN, CategoricalPreprocessor, NumericPreprocessor  # noqa: E402
from kit.io import write_json  # noqa: E402
from kit.runtime.threads import apply_thread_budget  # noqa: E402

ROWS_PER_DATE = 50_000
BATCH_SIZE = 1024


def log(msg: str) -> None:
    print(f"[bench_tabular] {msg}", file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------

def make_dataset(root: Path, rows: int, cols: int, cat_cols: int) -> Path:
    """Hive-partitioned parquet (date=YYYY-MM-DD/part-0.parquet); reused when complete."""
    folder = root / f"tabular_{rows}x{cols}_cat{cat_cols}"
    if (folder / "_DONE").exists():
        return folder
    rng, n_num = np.random.default_rng(0), cols - cat_cols - 2  # - id - target
    vocab = [np.array([f"v{j}_{k}" for k in range(10 + 40 * j)]) for j in range(cat_cols)]
    dates = pd.date_range("2021-01-01", periods=math.ceil(rows / ROWS_PER_DATE)).strftime("%F")
    for d, date in enumerate(dates):
        start = d * ROWS_PER_DATE
        n = min(ROWS_PER_DATE, rows - start)
        table = {"id": pa.array(np.arange(start, start + n)),
                 "target": pa.array(rng.integers(0, 2, n, dtype=np.int8))}
        for j in range(n_num):
            table[f"num_{j}"] = pa.array(rng.standard_normal(n, dtype=np.float32) * (j + 1),
                                         mask=rng.random(n) < 0.05)
        for j in range(cat_cols):
            codes = pa.array(rng.integers(0, len(vocab[j]), n).astype(np.int32),
                             mask=rng.random(n) < 0.02)
            table[f"cat_{j}"] = pa.DictionaryArray.from_arrays(
                codes, pa.array(vocab[j])).cast(pa.string())
        (folder / f"date={date}").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), folder / f"date={date}" / "part-0.parquet",
                       row_group_size=65536)
    (folder / "_DONE").touch()
    return folder


def columns_of(folder: Path) -> tuple[list[str], list[str]]:
    schema = pq.read_schema(next(folder.glob("date=*/part-0.parquet")))
    num = [n for n in schema.names if n.startswith("num_")]
    return num, [n for n in schema.names if n.startswith("cat_")]


def sample_frame(folder: Path, rows: int) -> pd.DataFrame:
    """The first `rows` rows (reading no more, so the RSS children start small)."""
    first = next(iter(sorted(folder.glob("date=*/part-0.parquet"))))
    return next(pq.ParquetFile(first).iter_batches(batch_size=rows)).to_pandas()


# -- the fitted transform TabularStream calls once per chunk: the kit's own ------------------

class KitTransform:
    """kit.data.tabular's fitted preprocessors, as kit.tasks.tabular.task applies them."""

    def __init__(self, frame: pd.DataFrame, num: list[str], cat: list[str]) -> None:
        self.num = NumericPreprocessor().fit(frame, num)
        self.cat = CategoricalPreprocessor().fit(frame, cat)

    def __call__(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"x_num": self.num.transform(frame), "x_cat": self.cat.transform(frame),
                "y": frame["target"].to_numpy(np.float32),
                "index": frame["id"].to_numpy(np.int64)}


# -- the per-row loader the seed story started from ------------------------------------------

class NaiveRows(IterableDataset):
    """One row at a time: iloc slice, sklearn per row, one tensor per sample."""

    def __init__(self, frame: pd.DataFrame, num: list[str], cat: list[str]) -> None:
        self.frame, self.num, self.cat = frame, num, cat
        self.medians = frame[num].median()
        self.scaler = StandardScaler().fit(frame[num].fillna(self.medians))
        self.encoders = {c: LabelEncoder().fit(frame[c].fillna("nan").astype(str)) for c in cat}

    def __iter__(self):
        for i in range(len(self.frame)):
            row = self.frame.iloc[i:i + 1]
            x_num = self.scaler.transform(row[self.num].fillna(self.medians))[0]
            x_cat = [self._encode(row[c], self.encoders[c]) for c in self.cat]
            yield {"x_num": torch.tensor(x_num, dtype=torch.float32),
                   "x_cat": torch.tensor(x_cat), "y": torch.tensor(float(row["target"].iloc[0]))}

    @staticmethod
    def _encode(series: pd.Series, encoder: LabelEncoder) -> int:
        values = series.fillna("nan").astype(str)
        return int(values.apply(lambda v: encoder.transform([v])[0] + 2
                                if v in encoder.classes_ else UNSEEN).iloc[0])


# -- measurements ----------------------------------------------------------------------------

def rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1)


def bench_naive(folder: Path, rows: int) -> float:
    frame = sample_frame(folder, rows)
    num, cat = columns_of(folder)
    loader = DataLoader(NaiveRows(frame, num, cat), batch_size=256)
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["y"])
    return rate(seen, time.perf_counter() - start)


def kit_stream(folder: Path, transform) -> TabularStream:
    num, cat = columns_of(folder)
    return TabularStream(folder, columns=["id", "target", *num, *cat], transform=transform,
                         batch_size=BATCH_SIZE, shuffle=True, seed=0)


def epoch_rows(loader, stream: TabularStream, epoch: int) -> tuple[int, float]:
    stream.set_epoch(epoch)
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["y"])
    return seen, time.perf_counter() - start


def bench_kit(folder: Path, transform, rows: int, workers: int, repeats: int) -> dict:
    """Kit epochs in turns with pyarrow limit passes (see the module docstring)."""
    stream = kit_stream(folder, transform)
    loader = stream_loader(stream, num_workers=workers) if workers else stream
    first = epoch_rows(loader, stream, 0)  # with workers: includes starting them (spawn)
    kit_s, limit_s = [], []
    for epoch in range(1, repeats + 1):
        seen, seconds = epoch_rows(loader, stream, epoch)
        if seen != rows:
            raise SystemExit(f"kit loader yielded {seen} rows in epoch {epoch}, expected {rows}")
        kit_s.append(seconds)
        limit_s.append(limit_pass(folder))
    return {"rows_per_s": rate(rows, min(kit_s)), "limit_rows_per_s": rate(rows, min(limit_s)),
            "fraction_of_limit": round(statistics.median(
                floor / kit for kit, floor in zip(kit_s, limit_s)), 3),
            "fraction_of_limit_best_of": round(min(limit_s) / min(kit_s), 3),
            "first_epoch_s": round(first[1], 2), "chunk_rows": stream.chunk_rows}


def limit_pass(folder: Path) -> float:
    """Seconds for pyarrow to read the kit's columns into numpy arrays, nothing else."""
    num, cat = columns_of(folder)
    start = time.perf_counter()
    for path in sorted(folder.glob("date=*/part-0.parquet")):
        reader = pq.ParquetFile(path, read_dictionary=cat)
        for batch in reader.iter_batches(batch_size=65536, columns=["id", "target", *num, *cat]):
            for col in batch.columns:
                (col.indices if pa.types.is_dictionary(col.type) else col).to_numpy(
                    zero_copy_only=False)
    return time.perf_counter() - start


def bench_encode(folder: Path, rows: int) -> dict:
    """Categorical codes for `rows` rows: per-value apply(lambda) vs one map per column."""
    frame = sample_frame(folder, rows)
    _, cat = columns_of(folder)
    values = {c: frame[c].fillna("nan").astype(str) for c in cat}
    encoders = {c: LabelEncoder().fit(values[c]) for c in cat}
    start = time.perf_counter()
    for c in cat:
        enc = encoders[c]
        values[c].apply(lambda v, enc=enc: enc.transform([v])[0] if v in enc.classes_ else UNSEEN)
    per_value = time.perf_counter() - start
    kit = CategoricalPreprocessor().fit(frame, cat)
    start = time.perf_counter()
    kit.transform(frame)
    mapped = time.perf_counter() - start
    n = rows * len(cat)
    return {"apply_values_per_s": rate(n, per_value), "map_values_per_s": rate(n, mapped),
            "speedup": round(per_value / mapped, 1)}


def peak_rss_mb(folder: Path, thread_args: list[str]) -> dict:
    """RSS of one full kit epoch (num_workers=0) in a fresh child: before it and at peak."""
    child = subprocess.run([sys.executable, __file__, "--rss-child", str(folder), *thread_args],
                           check=True, capture_output=True, text=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def max_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage: Linux carries ru_maxrss over exec from
    the parent (here the benchmark, ~1.5 GB), which would hide the child's own peak."""
    try:
        status = Path("/proc/self/status").read_text()
        return round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)  # kB
    except (OSError, IndexError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_child(folder: Path) -> None:
    num, cat = columns_of(folder)
    stream = kit_stream(folder, KitTransform(sample_frame(folder, 5000), num, cat))
    before = max_rss_mb()  # imports + fitting: the same at every size
    for _ in stream:
        pass
    print(json.dumps({"before_epoch": before, "peak": max_rss_mb()}))


def set_threads(num_threads: int, budget: bool) -> dict:
    """The kit's thread budget, or (budget=False) every pool left at its library default."""
    if budget:
        return {"budget": True, **apply_thread_budget(num_threads)}
    return {"budget": False, "torch_num_threads": torch.get_num_threads(),
            "blas_openmp_threads": max(p["num_threads"] for p in threadpool_info()),
            "arrow_cpu_count": pa.cpu_count(), "arrow_io_thread_count": pa.io_thread_count()}


# -- main ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--cols", type=int, default=250)
    p.add_argument("--cat-cols", type=int, default=15)
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "kit_bench")
    p.add_argument("--naive-rows", type=int, default=128, help="rows timed for the naive loader")
    p.add_argument("--encode-rows", type=int, default=2000, help="rows timed for encoding")
    p.add_argument("--repeats", type=int, default=5,
                   help="kit epoch + limit pass pairs per kit loader (the machine may be shared)")
    p.add_argument("--num-threads", type=int, default=0,
                   help="train.num_threads for the kit's thread budget (0: the kit chooses)")
    p.add_argument("--no-thread-budget", action="store_true",
                   help="leave torch, BLAS/OpenMP and pyarrow at their library defaults")
    p.add_argument("--summary-json", type=Path)
    p.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.num_threads < 0:
        p.error(f"--num-threads {args.num_threads}: use 0 (the kit chooses) or a count >= 1")
    threads = set_threads(args.num_threads, not args.no_thread_budget)
    thread_args = ["--num-threads", str(args.num_threads)] + (
        ["--no-thread-budget"] if args.no_thread_budget else [])
    if args.rss_child:
        return rss_child(args.rss_child)
    if args.cat_cols < 0 or args.cols < args.cat_cols + 3 or args.rows < 1 or args.repeats < 1:
        p.error("need --rows >= 1, --repeats >= 1 and --cols >= --cat-cols + 3 (id, target, "
                "one numeric)")
    log(f"threads: {threads}")

    log(f"dataset: {args.rows} rows x {args.cols} columns under {args.data_dir}")
    folder = make_dataset(args.data_dir, args.rows, args.cols, args.cat_cols)
    num, cat = columns_of(folder)
    sample = sample_frame(folder, 20_000)
    log(f"naive per-row loader on {args.naive_rows} rows")
    naive = bench_naive(folder, args.naive_rows)
    log("kit, num_workers=0, in turns with the pyarrow limit")
    kit = bench_kit(folder, KitTransform(sample, num, cat), args.rows, 0, args.repeats)
    log("kit, num_workers=2 (spawn, persistent), in turns with the pyarrow limit")
    kit_workers = bench_kit(folder, KitTransform(sample, num, cat), args.rows, 2, args.repeats)
    limit = max(kit["limit_rows_per_s"], kit_workers["limit_rows_per_s"])
    log(f"categorical encoding on {args.encode_rows} rows")
    encode = bench_encode(folder, args.encode_rows)
    log(f"peak RSS at {args.rows} and {10 * args.rows} rows (generating the 10x data once)")
    big = make_dataset(args.data_dir, 10 * args.rows, args.cols, args.cat_cols)
    rss = {"N": peak_rss_mb(folder, thread_args), "10N": peak_rss_mb(big, thread_args)}

    summary = {
        "rows_per_s": {"naive": naive, "kit": kit["rows_per_s"],
                       "kit_workers": kit_workers["rows_per_s"], "limit": limit},
        "speedup_vs_naive": round(kit["rows_per_s"] / naive, 1),
        "fraction_of_limit": kit["fraction_of_limit"],
        "fraction_of_limit_best_of": kit["fraction_of_limit_best_of"],
        "fraction_of_limit_workers": kit_workers["fraction_of_limit"],
        "encode_speedup": encode["speedup"], "encode_values_per_s": encode,
        "peak_rss_mb": {k: v["peak"] for k, v in rss.items()},
        "rss_before_epoch_mb": {k: v["before_epoch"] for k, v in rss.items()},
        "rss_ratio_10N_to_N": round(rss["10N"]["peak"] / rss["N"]["peak"], 3),
        "kit_workers_first_epoch_s": kit_workers["first_epoch_s"],
        "rows": args.rows, "cols": args.cols, "cat_cols": args.cat_cols,
        "batch_size": BATCH_SIZE, "chunk_rows": kit["chunk_rows"], "naive_rows": args.naive_rows,
        "repeats": args.repeats, "threads": threads,
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "pyarrow": pa.__version__,
        "pandas": pd.__version__, "data_dir": str(folder),
    }
    if args.summary_json:
        write_json(args.summary_json, summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
