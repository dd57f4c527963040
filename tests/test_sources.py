"""Table sources (kit/data/sources.py): CSV, parquet, folders and globs; CSVs streamed into a
parquet cache with column types from a sample, data.dtypes, and a clear mismatch error."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from kit.data import sources
from kit.data.sources import csv_to_parquet, read_table, source_exists, source_files
from kit.errors import DataError


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(300), "x": rng.normal(size=300).round(4),
                         "city": rng.choice(["a", "b", "c"], 300), "target": rng.integers(0, 2, 300)})


def test_a_csv_a_parquet_file_a_folder_and_a_glob_read_the_same_rows(tmp_path, table):
    table.to_csv(tmp_path / "train.csv", index=False)
    table.to_parquet(tmp_path / "train.parquet", index=False)
    (tmp_path / "parts").mkdir()
    for i, part in enumerate((table.iloc[:100], table.iloc[100:200], table.iloc[200:])):
        part.to_parquet(tmp_path / "parts" / f"part-{i}.parquet", index=False)
        part.to_csv(tmp_path / "parts" / f"part-{i}.csv", index=False)
    for spec in ("train.csv", "train.parquet", "parts", "parts/*.parquet", "parts/part-*.csv"):
        frame = read_table(tmp_path, spec, what="train", required=["id", "target"])
        pd.testing.assert_frame_equal(frame, table, check_dtype=False, obj=spec)
        assert source_exists(tmp_path, spec)
    assert not source_exists(tmp_path, "nothing-*.csv")


def test_bad_sources_name_the_path_and_the_fix(tmp_path, table):
    with pytest.raises(DataError, match=r"train file not found: .*missing.csv; fix data.train"):
        source_files(tmp_path, "missing.csv", "train")
    with pytest.raises(DataError, match=r"no files match \(data.test\)"):
        source_files(tmp_path, "test-*.parquet", "test")
    (tmp_path / "mixed").mkdir()
    table.to_parquet(tmp_path / "mixed" / "a.parquet")
    table.to_csv(tmp_path / "mixed" / "b.csv")
    with pytest.raises(DataError, match=r"mixes or holds files"):
        source_files(tmp_path, "mixed/*", "train")
    table.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match=r"has no column\(s\) \['label'\]"):
        read_table(tmp_path, "train.csv", what="train", required=["label"])
    with pytest.raises(DataError, match=r"data.dtypes \{'x': 'float32'\}: give each column one "
                                        r"of int64, float64, string, bool"):
        read_table(tmp_path, "train.csv", what="train", dtypes={"x": "float32"})


def test_a_large_csv_becomes_a_parquet_cache_once_and_again_when_it_changes(tmp_path, table):
    path = tmp_path / "train.csv"
    table.to_csv(path, index=False)
    frame = read_table(tmp_path, "train.csv", what="train", cache_mb=0.001)  # 1 KB: "large"
    pd.testing.assert_frame_equal(frame, table, check_dtype=False)
    cached = list((tmp_path / sources.CACHE).glob("train.csv-*.parquet"))
    assert len(cached) == 1 and frame["id"].dtype == np.int64
    stamp = cached[0].stat().st_mtime_ns
    read_table(tmp_path, "train.csv", what="train", cache_mb=0.001)
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not written again
    table.assign(x=table["x"] * 2).to_csv(path, index=False)
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    again = read_table(tmp_path, "train.csv", what="train", cache_mb=0.001)
    assert np.allclose(again["x"], table["x"] * 2)  # a changed CSV: a new cache
    assert len(list((tmp_path / sources.CACHE).glob("*.parquet"))) == 2
    assert not list((tmp_path / sources.CACHE).glob(".*tmp*"))  # no half file left


@pytest.mark.parametrize("block", [1 << 24, 4096])  # the misfit in the first block, or later
def test_a_later_value_that_misfits_the_sampled_type_names_column_line_and_fix(
        tmp_path, table, monkeypatch, block):
    monkeypatch.setattr(sources, "SAMPLE_ROWS", 50)  # types from the first 50 rows
    monkeypatch.setattr(sources, "BLOCK_BYTES", block)
    rows = ["id,count,target"] + [f"{i},{i % 7},{i % 2}" for i in range(5000)]
    rows[4001] = "4000,7.5,0"  # a float in an int column, far below the sample
    path = tmp_path / "train.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        csv_to_parquet(path, tmp_path / "cache")
    message = str(info.value)
    assert re.search(r"train.csv, line 4002: column 'count' holds '7.5', not int64", message)
    assert 'data.dtypes = { count = "float64" }' in message and "\n" not in message
    assert not list((tmp_path / "cache").glob("*")), "no half-written cache"
    frame = read_table(tmp_path, "train.csv", what="train", dtypes={"count": "float64"})
    assert frame["count"].dtype == np.float64 and frame["count"].iloc[4000] == 7.5
    rows[4001] = "4000,n/a,0"  # a missing-value spelling is a null, not a misfit
    path.write_text("\n".join(rows) + "\n")
    assert pd.isna(read_table(tmp_path, "train.csv", what="train", cache_mb=0)["count"][4000])


def test_train_py_trains_from_parquet_files(tmp_path):
    from kit.cli import train_main
    from kit.hooks import load_hook

    data = tmp_path / "data"
    load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")(data)
    for name in ("train", "test"):
        pd.read_csv(data / f"{name}.csv").to_parquet(data / f"{name}.parquet", index=False)
        (data / f"{name}.csv").unlink()
    summary = train_main(["--comp", "titanic", "--data", str(data), "--runs", str(tmp_path / "r"),
                          "--submissions", str(tmp_path / "s"), "--fits", "1",
                          "--set", "data.train=train.parquet", "--set", "data.test=test.parquet",
                          "--set", "model.name=lgbm"])
    assert np.isfinite(summary["cv"]["mean"]) and os.path.exists(summary["submission"])


def test_parts_with_other_columns_and_a_row_cut_short_are_named(tmp_path, table):
    (tmp_path / "parts").mkdir()
    table.iloc[:150].to_parquet(tmp_path / "parts" / "a.parquet", index=False)
    table.iloc[150:].assign(x=lambda f: f["x"].astype(str)).to_parquet(
        tmp_path / "parts" / "b.parquet", index=False)
    with pytest.raises(DataError, match=r"b.parquet and .*a.parquet are parts of one table but "
                                        r"differ in column\(s\) \['x'\]"):
        read_table(tmp_path, "parts", what="train")
    rows = ["id,count,target"] + [f"{i},{i % 7},{i % 2}" for i in range(3000)]
    rows[2001] = "2000,5"  # a row cut short in the middle of the file
    (tmp_path / "cut.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"cut.csv, line 2002 has 2 of 3 fields: '2000,5' is not "
                                        r"a whole row .*download the file again"):
        csv_to_parquet(tmp_path / "cut.csv", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*"))


def test_an_interrupted_conversion_leaves_no_half_cache_and_the_next_run_converts(
        tmp_path, monkeypatch):
    path = tmp_path / "train.csv"
    pd.DataFrame({"id": range(20000), "x": np.arange(20000) * 0.5}).to_csv(path, index=False)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 4096)  # many batches
    whole = sources._batches

    def interrupted(*args):  # Ctrl-C after the first record batch was written
        batches = whole(*args)
        yield next(batches)
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "_batches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        csv_to_parquet(path, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir()), "no half-written cache"
    monkeypatch.setattr(sources, "_batches", whole)
    frame = pd.read_parquet(csv_to_parquet(path, tmp_path / "cache"))
    assert len(frame) == 20000 and frame["x"].iloc[-1] == 9999.5
