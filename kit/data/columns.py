"""Which columns a tabular run learns from: what both files can give.

`features.numeric` / `features.categorical` are lists taken as they are, or "auto": the
columns train and test both hold after features.py (a train-only column is a label, a
leak or a second target, and a model cannot use it on test rows), numbers (not booleans)
as numeric and the rest categorical; the id, the target, data.weight, cv.group, cv.time, the other lists'
columns and `features.exclude` are left out. Long free text is never a category: with
categorical "auto", a column `is_free_text` (rule below) goes under `features.text` when that
is "auto" (the default), and is otherwise left out; "auto" text takes nothing when the
categorical list is explicit. What "auto" chose and what it left out are printed: the kit
prints what it guesses. The resolved lists travel on `Prepared.features`, so a run can
store them and predict with the same lists next month.

    lists = feature_lists(cfg, train, test_columns=test.columns)  # numeric, categorical, text
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from kit.config import AUTO, Config
from kit.errors import ConfigError, DataError
from kit.runtime import distributed as dist


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


# free text, not a category (docs/training.md, "Text columns"): at least MIN_DISTINCT
# distinct values and either a mean length over LONG characters with at least 5 % of the
# values distinct, or more than half distinct with most values holding a space (Titanic's
# Name). Short codes (Ticket, Cabin) and long labels of a few levels stay categories.
MIN_DISTINCT, LONG, SAMPLE = 20, 30, 100_000


def is_free_text(values: pd.Series) -> bool:
    """Whether a string column reads as free text (the rule above), judged on up to
    SAMPLE non-missing values."""
    if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(values) \
            or pd.api.types.is_bool_dtype(values):
        return False
    texts = values.dropna()
    if len(texts) > SAMPLE:
        texts = texts.sample(SAMPLE, random_state=0)
    texts = texts.astype(str)
    distinct = texts.nunique()
    if distinct < MIN_DISTINCT:
        return False
    share = distinct / len(texts)
    long = texts.str.len().mean() > LONG and share >= 0.05
    return bool(long or (share > 0.5 and texts.str.contains(r"\s").mean() > 0.5))


def feature_columns(cfg: Config, train: pd.DataFrame, test_columns: Iterable[str] | None = None
                    ) -> tuple[list[str], list[str]]:
    """(numeric, categorical) of `feature_lists`, for the paths that read no text."""
    lists = feature_lists(cfg, train, test_columns)
    return lists["numeric"], lists["categorical"]


def feature_lists(cfg: Config, train: pd.DataFrame, test_columns: Iterable[str] | None = None
                  ) -> dict[str, list[str]]:
    """{"numeric", "categorical", "text"} as resolved from features.*. "auto" takes the
    columns of `train` that `test_columns` also holds (all of them when None)."""
    f = cfg.features
    _check_exclude(cfg, list(train.columns))
    auto_num, auto_cat, auto_text = f.numeric == AUTO, f.categorical == AUTO, f.text == AUTO
    numeric = [] if auto_num else list(f.numeric)
    categorical = [] if auto_cat else list(f.categorical)
    text = [] if auto_text else list(f.text)
    if not (auto_num or auto_cat):
        return {"numeric": numeric, "categorical": categorical, "text": text}
    rest, train_only = _candidates(cfg, train, {*numeric, *categorical, *text}, test_columns)
    is_num = {c: pd.api.types.is_numeric_dtype(train[c]) and not pd.api.types.is_bool_dtype(
        train[c]) for c in rest}
    if auto_num:
        numeric = [c for c in rest if is_num[c]]
    free = [c for c in rest if auto_cat and not is_num[c] and is_free_text(train[c])]
    if auto_cat:
        categorical = [c for c in rest if not is_num[c] and c not in free]
    if auto_text and auto_cat:
        text = free
    _print_choice(numeric if auto_num else None, categorical if auto_cat else None, train_only)
    _print_text(free, text if auto_text else None)
    return {"numeric": numeric, "categorical": categorical, "text": text}


def _candidates(cfg: Config, train: pd.DataFrame, listed: set[str],
                test_columns: Iterable[str] | None) -> tuple[list[str], list[str]]:
    """(the columns "auto" may take, the train-only columns it leaves out)."""
    skip = {cfg.data.id, *cfg.data.targets, *cfg.cv.stratify_on, cfg.data.weight, cfg.cv.group,
            cfg.cv.time, *cfg.features.exclude, *listed}
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
    for what, listed in (("numeric", f.numeric), ("categorical", f.categorical),
                         ("text", f.text)):
        both = [c for c in listed if c in f.exclude] if listed != AUTO else []
        if both:
            raise ConfigError(f"features.{what} lists {both}, which features.exclude drops; "
                              "remove them from one of the two in config.toml")
    if f.text != AUTO:
        both = [c for c in f.text if c in {*f.numeric, *f.categorical}]
        if both:
            raise ConfigError(f"features.text lists {both}, which features.numeric / "
                              "categorical list too; a column is read one way: remove them "
                              "from one list in config.toml")


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


def _print_text(free: list[str], text: list[str] | None) -> None:
    """Say where free text went: under features.text ("auto"), or left out."""
    if not dist.is_main():
        return
    if text is not None and free:
        print(f"features.text = \"auto\": {len(free)} free-text column(s) {free} (TF-IDF per "
              "fold; list them in features.categorical to read them as categories)")
    left = [c for c in free if text is None or c not in text]
    if left:
        print(f"features \"auto\": left out free-text column(s) {left}, not categories; list "
              "them in features.text (TF-IDF) or features.categorical")
