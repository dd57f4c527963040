import numpy as np
import pandas as pd

from kit.data.tabular import (
    MISSING,
    UNSEEN,
    CategoricalPreprocessor,
    NumericPreprocessor,
    load_preprocessors,
    save_preprocessors,
)


def frame():
    return pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0, np.inf], "b": [10, 10, 10, 10, 10],
                         "c": ["x", "y", None, "x", "z"], "d": [1, 2, 1, 2, 1]})


def test_numeric_imputes_median_and_standardizes():
    num = NumericPreprocessor().fit(frame(), ["a", "b"])
    assert num.median[0] == 2.0  # NaN and +inf ignored: median of 1, 2, 4
    x = num.transform(frame())
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert np.allclose(x[:, 0].mean(), 0, atol=1e-6) and np.allclose(x[:, 1], 0)  # constant -> 0
    assert x[2, 0] == x[1, 0] == x[4, 0]  # NaN and inf both imputed with the median (2.0)


def test_categorical_codes_missing_unseen_known():
    cat = CategoricalPreprocessor().fit(frame(), ["c", "d"])
    test = pd.DataFrame({"c": ["x", None, "never", "y"], "d": [2, 3, 1, np.nan]})
    codes = cat.transform(test)
    assert codes.dtype == np.int64
    assert codes[1, 0] == MISSING and codes[2, 0] == UNSEEN and codes[3, 1] == MISSING
    assert codes[0, 0] == cat.vocab["c"]["x"] >= 2 and codes[1, 1] == UNSEEN
    assert cat.cardinalities == [3 + 2, 2 + 2]


def test_categorical_dtype_input_codes_like_strings():
    """TabularStream hands string columns over as pandas Categorical: same codes, also
    for categories no row uses, missing values and values unseen in training."""
    cat = CategoricalPreprocessor().fit(frame(), ["c"])
    values = ["y", None, "never", "x", "y"]
    as_category = pd.Categorical(values, categories=["unused", "y", "never", "x"])
    expected = cat.transform(pd.DataFrame({"c": values}))
    assert cat.transform(pd.DataFrame({"c": as_category})).tolist() == expected.tolist()
    assert expected[:, 0].tolist() == [cat.vocab["c"]["y"], MISSING, UNSEEN,
                                       cat.vocab["c"]["x"], cat.vocab["c"]["y"]]


def test_min_count_codes_rare_values_as_unseen():
    cat = CategoricalPreprocessor(min_count=2).fit(frame(), ["c"])
    assert cat.transform(pd.DataFrame({"c": ["z", "x"]}))[:, 0].tolist() == [UNSEEN,
                                                                             cat.vocab["c"]["x"]]


def test_json_round_trip(tmp_path):
    num = NumericPreprocessor().fit(frame(), ["a"])
    cat = CategoricalPreprocessor().fit(frame(), ["c", "d"])
    save_preprocessors(tmp_path / "p.json", num, cat)
    num2, cat2, target = load_preprocessors(tmp_path / "p.json")
    assert target is None  # a classification fold saves no target transform
    assert np.array_equal(num.transform(frame()), num2.transform(frame()))
    assert np.array_equal(cat.transform(frame()), cat2.transform(frame()))


def test_missing_column_is_named():
    import pytest

    from kit.errors import DataError

    num = NumericPreprocessor().fit(frame(), ["a"])
    with pytest.raises(DataError, match=r"\['a'\] not in the data"):
        num.transform(pd.DataFrame({"b": [1]}))
