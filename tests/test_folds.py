import numpy as np
import pytest

from kit.config import CVConfig
from kit.errors import DataError
from kit.folds import check_folds, make_folds


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
