"""kit/tasks/tabular/fold_features.py: the inner K-fold that gives a fold's training rows their columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kit.errors import DataError
from kit.tasks.tabular.fold_features import fit_fold_columns


def table(n: int = 200, n_groups: int = 23, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": rng.integers(0, n_groups, n), "x": rng.normal(size=n),
                         "y": rng.integers(0, 2, n)})


def spy(calls: list):
    """A fold feature that records which rows it was fitted on and asked for."""
    def fn(fit, frame):
        calls.append((fit.index.to_numpy(), frame.index.to_numpy()))
        return pd.DataFrame({"rate": fit["y"].mean()}, index=frame.index)
    return fn


@pytest.mark.parametrize("stratify", [False, True])
def test_no_group_is_split_across_inner_folds(stratify):
    train, calls = table(), []
    fit_rows, valid_rows = np.arange(150), np.arange(150, 200)
    groups = train["g"].to_numpy()[fit_rows]
    cols, _ = fit_fold_columns([spy(calls)], train, fit_rows, valid_rows, train.iloc[:5],
                               target="y", n_inner=5, seed=0, groups=groups,
                               stratify=stratify)
    inner = calls[2:]  # after the validation rows and the test rows
    assert len(inner) == 5
    held = np.concatenate([h for _, h in inner])
    assert sorted(held) == list(fit_rows)  # each training row held out once
    for fit, part in inner:
        assert not set(train["g"].iloc[fit]) & set(train["g"].iloc[part])
    assert len(cols) == 200


def test_without_groups_the_inner_split_is_a_plain_k_fold():
    train, calls = table(), []
    fit_fold_columns([spy(calls)], train, np.arange(150), np.arange(150, 200), train.iloc[:5],
                     target="y", n_inner=5, seed=0)
    assert [len(h) for _, h in calls[2:]] == [30] * 5


def test_one_group_in_a_folds_training_rows_is_an_error_naming_cv_group():
    train = table().assign(g=1)
    with pytest.raises(DataError, match="cv.group"):
        fit_fold_columns([spy([])], train, np.arange(150), np.arange(150, 200),
                         train.iloc[:5], target="y", n_inner=5, seed=0,
                         groups=np.ones(150, dtype=int))
