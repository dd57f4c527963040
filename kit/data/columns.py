"""Which columns a tabular run learns from: what both files can give.

`features.numeric` / `features.categorical` are lists taken as they are, or "auto": the
columns train and test both hold after features.py (a train-only column is a label, a
leak or a second target, and a model cannot use it on test rows), numbers (not booleans)
as numeric and the rest categorical; the id, the target, cv.group, the other list's
columns and `features.exclude` are left out. What "auto" chose and what it left out as
train-only are printed: the kit prints what it guesses. The resolved lists travel on
`Prepared.features`, so a run can store them and predict with the same lists next month.

    numeric, categorical = feature_columns(cfg, train, test_columns=test.columns)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from kit import distributed as dist
from kit.config import AUTO, Config
from kit.errors import ConfigError, DataError


def check_target_column(cfg: Config, train_columns: Iterable[str], test: pd.DataFrame,
                        test_path: Path) -> None:
    """Refuse a data.target that test.csv holds with values: the competition asks for a
    column test lacks, so that one is a feature and the target is one of train's own."""
    target = cfg.data.target
    if target not in test.columns or test[target].isna().all():  # absent, or a blank placeholder
        return
    only = [c for c in train_columns if c not in test.columns]
    likely = (f"train-only columns (the likely targets): {only}" if only else
              "train and test hold the same columns: check data.train / data.test")
    raise DataError(f"{test_path}: holds data.target = {target!r} too, so it is a feature, not "
                    f"what the competition asks for; {likely}; set data.target in config.toml")


def feature_columns(cfg: Config, train: pd.DataFrame, test_columns: Iterable[str] | None = None
                    ) -> tuple[list[str], list[str]]:
    """(numeric, categorical) as resolved from features.numeric / categorical. "auto" takes
    the columns of `train` that `test_columns` also holds (all of them when None)."""
    f = cfg.features
    _check_exclude(cfg, list(train.columns))
    auto_num, auto_cat = f.numeric == AUTO, f.categorical == AUTO
    numeric = [] if auto_num else list(f.numeric)
    categorical = [] if auto_cat else list(f.categorical)
    if not (auto_num or auto_cat):
        return numeric, categorical
    rest, train_only = _candidates(cfg, train, {*numeric, *categorical}, test_columns)
    is_num = {c: pd.api.types.is_numeric_dtype(train[c]) and not pd.api.types.is_bool_dtype(
        train[c]) for c in rest}
    if auto_num:
        numeric = [c for c in rest if is_num[c]]
    if auto_cat:
        categorical = [c for c in rest if not is_num[c]]
    _print_choice(numeric if auto_num else None, categorical if auto_cat else None, train_only)
    return numeric, categorical


def _candidates(cfg: Config, train: pd.DataFrame, listed: set[str],
                test_columns: Iterable[str] | None) -> tuple[list[str], list[str]]:
    """(the columns "auto" may take, the train-only columns it leaves out)."""
    skip = {cfg.data.id, cfg.data.target, cfg.cv.group, *cfg.features.exclude, *listed}
    rest = [c for c in train.columns if c not in skip]
    if test_columns is None:
        return rest, []
    in_test = set(test_columns)
    return [c for c in rest if c in in_test], [c for c in rest if c not in in_test]


def _check_exclude(cfg: Config, columns: list[str]) -> None:
    f = cfg.features
    unknown = [c for c in f.exclude if c not in columns]
    if unknown:
        raise ConfigError(f"features.exclude names {unknown}, which the train data does not "
                          f"hold after features.py (columns: {columns}); fix features.exclude "
                          "in config.toml")
    for what, listed in (("numeric", f.numeric), ("categorical", f.categorical)):
        both = [c for c in listed if c in f.exclude] if listed != AUTO else []
        if both:
            raise ConfigError(f"features.{what} lists {both}, which features.exclude drops; "
                              "remove them from one of the two in config.toml")


def _print_choice(numeric: list[str] | None, categorical: list[str] | None,
                  train_only: list[str]) -> None:
    if not dist.is_main():
        return
    for what, cols in (("numeric", numeric), ("categorical", categorical)):
        if cols is not None:
            print(f"features.{what} = \"auto\": {len(cols)} columns {cols}")
    if train_only:
        print(f"features \"auto\": left out train-only column(s) {train_only} (test data "
              "has none); list them in features.exclude to silence this")
