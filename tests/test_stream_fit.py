"""The preprocessors fitted in one pass over batches equal the in-memory fit: exactly for
means, standard deviations and vocabularies, within the stated rank bound for medians."""

import numpy as np
import pandas as pd
import pytest

from kit.data.stream_fit import fit_streamed, median_rank_bound
from kit.data.tabular import CategoricalPreprocessor, NumericPreprocessor


def frame(rows: int, seed: int = 0, missing: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({
        "area": rng.lognormal(5, 1, rows),  # skewed, non-negative: log1p'd
        "temp": rng.normal(10, 4, rows),
        "flag": rng.integers(0, 2, rows).astype(float),
        "city": rng.choice(["paris", "rome", "oslo", "lima"], rows, p=[.5, .3, .199, .001]),
        "code": rng.integers(0, 30, rows),  # numbers as categories: compared as strings
    })
    if missing:
        out.loc[rng.random(rows) < 0.1, "area"] = np.nan
        out.loc[rng.random(rows) < 0.05, "temp"] = np.inf  # as unusable as NaN
        out.loc[rng.random(rows) < 0.05, "city"] = None
    return out


def batches(table: pd.DataFrame, size: int):
    return (table.iloc[i:i + size] for i in range(0, len(table), size))


NUM, CAT = ["area", "temp", "flag"], ["city", "code"]


@pytest.mark.parametrize("batch", [7, 250, 5000])
def test_a_table_within_the_sample_fits_exactly_as_in_memory(batch):
    table = frame(3000)
    num, cat = fit_streamed(batches(table, batch), NUM, CAT, log1p_skewed=0.75, sample=5000)
    ref_num = NumericPreprocessor(0.75).fit(table, NUM)
    ref_cat = CategoricalPreprocessor(min_count=2).fit(table, CAT)
    np.testing.assert_array_equal(num.log1p, ref_num.log1p)
    assert num.log1p.tolist() == [True, False, False]
    for key in ("median", "mean", "std"):
        np.testing.assert_allclose(getattr(num, key), getattr(ref_num, key), rtol=1e-10,
                                   err_msg=key)
    assert cat.vocab == ref_cat.vocab and cat.cardinalities == ref_cat.cardinalities
    np.testing.assert_allclose(num.transform(table), ref_num.transform(table), atol=1e-6)


def test_a_larger_table_has_exact_moments_and_a_median_within_the_bound():
    table = frame(60_000, seed=1, missing=False)  # no missing values: medians change nothing
    sample = 2_000
    num, cat = fit_streamed(batches(table, 4096), NUM, CAT, sample=sample, seed=3)
    ref = NumericPreprocessor().fit(table, NUM)
    np.testing.assert_allclose(num.mean, ref.mean, rtol=1e-9)
    np.testing.assert_allclose(num.std, ref.std, rtol=1e-9)
    assert cat.vocab == CategoricalPreprocessor(min_count=2).fit(table, CAT).vocab
    eps = median_rank_bound(sample)
    for j, col in enumerate(["area", "temp"]):
        rank = (table[col].to_numpy() < num.median[j]).mean()
        assert abs(rank - 0.5) <= eps, (col, rank, eps)
    assert median_rank_bound(100_000) == pytest.approx(0.0085, abs=1e-4)


def test_seeded_and_empty():
    table = frame(5000, seed=2)
    a = fit_streamed(batches(table, 500), NUM, CAT, sample=300, seed=9)[0]
    b = fit_streamed(batches(table, 500), NUM, CAT, sample=300, seed=9)[0]
    np.testing.assert_array_equal(a.median, b.median)  # same seed, same sample
    num, cat = fit_streamed([], NUM, CAT)
    assert num.std.tolist() == [1.0, 1.0, 1.0] and cat.cardinalities == [2, 2]
