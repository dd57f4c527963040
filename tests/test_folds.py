import numpy as np
import pandas as pd
import pytest

from kit.config import CVConfig
from kit.errors import DataError
from kit.splits.folds import check_folds, make_folds, quantile_bins


def test_stratified_folds_cover_once_and_keep_class_ratio():
    y = np.array([0] * 70 + [1] * 30)
    folds = make_folds(y, CVConfig(n_splits=5, seed=1))
    assert sorted(np.bincount(folds)) == [20] * 5  # every row in exactly one fold
    for k in range(5):
        assert (y[folds == k] == 1).sum() == 6  # 30% positives in every fold


def test_same_seed_same_folds_other_seed_other_folds():
    y = np.array([0, 1] * 50)
    a, b = make_folds(y, CVConfig(seed=3)), make_folds(y, CVConfig(seed=3))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, make_folds(y, CVConfig(seed=4)))


@pytest.mark.parametrize("strategy", ["group", "stratified_group"])
def test_groups_never_split(strategy):
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 7)  # 40 people x 7 photos
    y = rng.integers(0, 3, len(groups))
    folds = make_folds(y, CVConfig(n_splits=5, strategy=strategy, group="person"), groups)
    for g in range(40):
        assert len(set(folds[groups == g])) == 1


def test_check_folds_detects_a_leak_and_gaps():
    with pytest.raises(DataError, match="group 'p1' appears in folds 0 and 1"):
        check_folds(np.array([0, 1, 1, 0]), 2, np.array(["p1", "p1", "p2", "p3"]))
    with pytest.raises(DataError, match="empty folds"):
        check_folds(np.array([0, 0, 2]), 3)


def test_too_few_rows_of_a_class_is_a_clear_error():
    with pytest.raises(DataError, match="rarest class has 2 rows"):
        make_folds(np.array([0] * 20 + [1] * 2), CVConfig(n_splits=5))


# --- regression folds --------------------------------------------------------------------------


def decile_of_each_row(y: np.ndarray) -> np.ndarray:
    """0..9 by rank (the values are distinct): the whole set's deciles, computed here."""
    return np.argsort(np.argsort(y)) * 10 // len(y)


def lognormal(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(12, 1.0, n)  # a long right tail (prices)


def test_stratified_regression_folds_hold_every_decile_of_a_skewed_target():
    y = lognormal()
    folds = make_folds(y, CVConfig(n_splits=5, seed=0, bins=10), problem="regression")
    assert folds.min() == 0 and folds.max() == 4
    assert np.bincount(folds).tolist() == [200] * 5  # every row in exactly one fold
    counts = np.zeros((5, 10), dtype=int)
    np.add.at(counts, (folds, decile_of_each_row(y)), 1)
    assert (counts == 20).all(), counts  # 1000 rows / 10 bins / 5 folds, tail included
    # the same check on unstratified folds fails: it measures the stratification
    plain = make_folds(y, CVConfig(n_splits=5, seed=0, strategy="kfold"), problem="regression")
    counts[:] = 0
    np.add.at(counts, (plain, decile_of_each_row(y)), 1)
    assert not (counts == 20).all()


def test_stratified_regression_fold_quantiles_match_the_whole_set():
    """Tolerance: each fold holds 20 rows of every decile of the whole set (the test above),
    so a fold's p-quantile (p = d/10) lies between its rows of deciles d-1 and d: within the
    whole set's [p - 0.1, p + 0.1] quantiles, i.e. one decile in rank. Guaranteed by the
    stratification; contiguous (unshuffled) folds of a sorted target miss it by far."""
    y = lognormal()
    ranked = np.sort(y)
    folds = make_folds(y, CVConfig(n_splits=5, seed=0, bins=10), problem="regression")
    for k in range(5):
        for p in (0.1, 0.5, 0.9):
            q = np.quantile(y[folds == k], p)
            assert np.quantile(y, p - 0.1) <= q <= np.quantile(y, p + 0.1), (k, p)
            cdf = np.searchsorted(ranked, q, side="right") / len(y)
            assert abs(cdf - p) <= 0.1, (k, p, cdf)


def test_kfold_regression_folds_cover_every_row_once():
    y = lognormal(103)
    folds = make_folds(y, CVConfig(n_splits=5, seed=0, strategy="kfold"), problem="regression")
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 21, 21, 21]


def test_stratified_group_regression_never_splits_a_group():
    groups = np.repeat(np.arange(100), 5)
    y = lognormal(500)
    folds = make_folds(y, CVConfig(n_splits=5, strategy="stratified_group", group="house"),
                       groups, problem="regression")
    assert (pd.Series(folds).groupby(groups).nunique() == 1).all()


def test_tiny_tied_regression_target_falls_back_to_fewer_bins():
    # 10 x 1.0 and 10 x 2.0, 5 folds: 4 bins would hold empty or < 5-row bins; 2 bins work,
    # so every fold gets two of each value
    y = np.array([1.0] * 10 + [2.0] * 10)
    folds = make_folds(y, CVConfig(n_splits=5, seed=0, bins=10), problem="regression")
    for k in range(5):
        assert sorted(y[folds == k].tolist()) == [1.0, 1.0, 2.0, 2.0]
    codes = quantile_bins(y, 10, 5)
    assert np.bincount(codes)[np.bincount(codes) > 0].min() >= 5


def test_a_constant_or_tiny_regression_target_does_not_crash():
    for y in (np.full(10, 3.0), np.array([1.0] * 8 + [2.0] * 2), np.arange(7.0)):
        folds = make_folds(y, CVConfig(n_splits=5, seed=0, bins=10), problem="regression")
        assert set(folds.tolist()) == set(range(5))
    assert (quantile_bins(np.full(10, 3.0), 10, 5) == 0).all()


def test_regression_folds_same_seed_same_folds_other_seed_other_folds():
    y = lognormal(300)
    a = make_folds(y, CVConfig(seed=7), problem="regression")
    assert np.array_equal(a, make_folds(y, CVConfig(seed=7), problem="regression"))
    assert not np.array_equal(a, make_folds(y, CVConfig(seed=8), problem="regression"))


def test_zero_inflated_regression_target_puts_its_zeros_evenly_in_the_folds():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(600), rng.lognormal(0, 1, 400)]  # 60 % zeros: sales, counts
    folds = make_folds(y, CVConfig(n_splits=5, seed=0, bins=10), problem="regression")
    assert [int((y[folds == k] == 0).sum()) for k in range(5)] == [120] * 5


# --- hashed folds (streamed tables) ---------------------------------------------------------


def test_hash_folds_are_row_local_stable_and_roughly_balanced():
    from kit.splits.folds import fold_balance, hash_folds

    rng = np.random.default_rng(0)
    ids = rng.permutation(100_000) + 1
    y = (rng.random(100_000) < 0.3).astype(int)
    folds = hash_folds(ids, 5, seed=42)
    assert folds.min() == 0 and folds.max() == 4  # every row exactly one fold
    # a row's fold is its id's: batch by batch, or in another order, the same
    np.testing.assert_array_equal(np.concatenate([hash_folds(ids[i:i + 777], 5, 42)
                                                  for i in range(0, len(ids), 777)]), folds)
    order = rng.permutation(len(ids))
    np.testing.assert_array_equal(hash_folds(ids[order], 5, 42), folds[order])
    np.testing.assert_array_equal(hash_folds(ids.astype(str), 5, 42), folds)  # "7" is 7
    np.testing.assert_array_equal(hash_folds(ids.astype(float), 5, 42), folds)  # 7.0 too
    assert (hash_folds(ids, 5, seed=43) != folds).mean() > 0.7  # another repeat reshuffles
    balance = fold_balance(folds, y, 5)
    assert abs(balance["rows"] - 20_000).max() < 5 * np.sqrt(20_000)
    assert abs(balance["share_1"] - 0.3).max() < 0.02  # approximate stratification
    groups = np.repeat(np.arange(2000), 3)  # group folds: hash the group id
    grouped = hash_folds(groups, 5, 1)
    assert (pd.Series(grouped).groupby(groups).nunique() == 1).all()
    reg = fold_balance(folds, rng.normal(size=100_000), 5, problem="regression")
    assert list(reg.columns) == ["rows", "target_mean"]
