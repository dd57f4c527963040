"""Feature lists are what both files can give (kit/data/columns.py, kit/tasks/tabular/task.py).

A small competition in a temporary folder: train.csv holds an id, a number, a word, a
train-only column (a leak or a second target) and the target; test.csv the id, the number
and the word. prepare() is called directly: no training, real files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_config

from kit.config import load_config
from kit.errors import ConfigError, DataError
from kit.tasks import Prepared
from kit.tasks.tabular.task import prepare


def write_data(folder: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"id": np.arange(n), "size": rng.normal(size=n),
                          "city": rng.choice(["a", "b"], n), "cost": rng.normal(size=n),
                          "y": rng.integers(0, 2, n)})
    test = train.drop(columns=["cost", "y"]).assign(id=np.arange(n, 2 * n))
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "y": 0}).to_csv(folder / "sample_submission.csv",
                                                    index=False)
    return folder


@pytest.fixture
def comp(tmp_path):
    folder = tmp_path / "comps" / "toy"
    write_config(folder, {"data": {"target": "y"}})
    write_data(tmp_path / "data")
    return folder


def prep_of(comp: Path, *overrides: str) -> Prepared:
    cfg = load_config(comp / "config.toml", overrides=list(overrides))
    data = comp.parent.parent / "data"
    return prepare(cfg, comp, data, comp.parent.parent / "cache")


def test_auto_leaves_out_train_only_columns_and_says_so(comp, capsys):
    prep = prep_of(comp)
    assert prep.features == {"numeric": ["size"], "categorical": ["city"], "text": []}
    out = capsys.readouterr().out
    assert "features.numeric = \"auto\": 1 columns ['size']" in out
    assert "left out train-only column(s) ['cost']" in out


def test_exclude_drops_columns_from_auto(comp):
    prep = prep_of(comp, "features.exclude=city")
    assert prep.features == {"numeric": ["size"], "categorical": [], "text": []}


def test_an_excluded_name_that_is_not_a_column_is_an_error_naming_the_columns(comp):
    with pytest.raises(ConfigError) as info:
        prep_of(comp, "features.exclude=citty")
    message = str(info.value)
    assert "features.exclude" in message and "'citty'" in message
    assert "'city'" in message and "'size'" in message  # the columns it could have meant
    assert "\n" not in message


def test_an_explicit_list_naming_an_excluded_column_is_an_error(comp):
    with pytest.raises(ConfigError, match="features.numeric lists \\['size'\\]"):
        prep_of(comp, "features.numeric=size", "features.exclude=size")


def test_a_target_that_test_also_holds_is_refused_naming_the_train_only_columns(comp):
    # a wrong but existing target: today's kit took `y` as a feature and stopped later
    # with "test data has no feature column(s) ['cost', 'y']"
    with pytest.raises(DataError) as info:
        prep_of(comp, "data.target=size", "competition.problem=regression",
                "competition.metric=rmse")
    message = str(info.value)
    assert "test.csv" in message and "data.target = 'size'" in message
    assert "['cost', 'y']" in message and "\n" not in message


def test_an_empty_target_column_in_test_is_a_placeholder_not_a_wrong_target(comp):
    data = comp.parent.parent / "data"
    pd.read_csv(data / "test.csv").assign(y=np.nan).to_csv(data / "test.csv", index=False)
    assert prep_of(comp).features == {"numeric": ["size"], "categorical": ["city"], "text": []}


def test_explicit_lists_are_taken_as_they_are(comp, capsys):
    # the order given, a number listed as a category: what a run writes back is used as is
    prep = prep_of(comp, "features.numeric=[]", "features.categorical=size,city")
    assert prep.features == {"numeric": [], "categorical": ["size", "city"], "text": []}
    assert "auto" not in capsys.readouterr().out
    assert prep.state["tables"].categorical == ["size", "city"]


def test_resolved_lists_written_back_survive_a_new_column(comp):
    """What a run stores (prep.features) and predict.py reads back next month gives the
    same lists even when the data (or the "auto" rule) would now give others."""
    first = prep_of(comp).features
    data = comp.parent.parent / "data"
    for name in ("train.csv", "test.csv"):
        pd.read_csv(data / name).assign(new=1.5).to_csv(data / name, index=False)
    assert prep_of(comp).features["numeric"] == ["size", "new"]  # auto would change
    written = [f"features.numeric={first['numeric']}",
               f"features.categorical={first['categorical']}"]
    assert prep_of(comp, *written).features == first


def test_an_explicit_train_only_column_is_still_an_error(comp):
    with pytest.raises(DataError, match="test data has no feature column\\(s\\) \\['cost'\\]"):
        prep_of(comp, "features.numeric=size,cost")


def test_an_image_task_has_no_feature_lists():
    prep = Prepared(ids=np.arange(2), y=np.zeros(2), classes=[0, 1], groups=None,
                    test_ids=np.arange(2))
    assert prep.features == {}


def test_auto_leaves_out_the_time_column_of_a_time_split(comp):
    """cv.time orders the folds; as a feature it would let a model learn the period (before:
    "auto" took it like any number)."""
    prep = prep_of(comp, "cv.strategy=time", "cv.time=size", "cv.n_splits=2")
    assert "size" not in prep.features["numeric"]
