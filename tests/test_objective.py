"""Objective and TargetTransform: round trips, pinned losses and predictions, and the
check_target rule at its exact limits."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from kit.errors import DataError
from kit.objective import Objective, TargetTransform, check_target

# --- TargetTransform -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["none", "log1p"])
@pytest.mark.parametrize("standardize", [False, True])
def test_target_transform_round_trip_on_a_fold(kind, standardize):
    rng = np.random.default_rng(0)
    y = rng.lognormal(11, 0.4, 200)  # House-Prices-sized values, ~60k .. 200k
    fit_rows = rng.permutation(200)[:160]  # one fold's training rows
    target = TargetTransform(kind, standardize=standardize).fit(y[fit_rows])
    z = target.transform(y)
    assert z.dtype == np.float64
    np.testing.assert_allclose(target.inverse(z), y, rtol=0, atol=1e-9)
    forward = np.log1p(y) if kind == "log1p" else y
    if standardize:  # fitted on the fold's rows only: those have mean 0 and (population) std 1
        assert z[fit_rows].mean() == pytest.approx(0, abs=1e-12)
        assert z[fit_rows].std() == pytest.approx(1, rel=1e-12)
        assert target.mean == pytest.approx(forward[fit_rows].mean(), rel=1e-12)
        assert not np.isclose(z.mean(), 0, atol=1e-6)  # the other rows were not fitted on
    else:
        np.testing.assert_array_equal(z, forward)


def test_target_transform_state_round_trips():
    target = TargetTransform("log1p", standardize=True).fit(np.array([0.0, 1.0, 3.0, 7.0]))
    again = TargetTransform.from_state(target.state_dict())
    z = np.array([-1.0, 0.0, 2.5])
    np.testing.assert_array_equal(again.inverse(z), target.inverse(z))


@pytest.mark.parametrize("bad", [-1.0, -1.5])
def test_log1p_refuses_targets_at_or_below_minus_one(bad):
    with pytest.raises(DataError, match=r'target_transform = "log1p" needs targets above -1.*'
                                        r'use "none"'):
        TargetTransform("log1p").fit(np.array([0.0, bad, 2.0]))
    fitted = TargetTransform("log1p").fit(np.array([-0.5, 0.0]))  # above -1 is fine
    with pytest.raises(DataError, match="above -1"):
        fitted.transform(np.array([bad]))


# --- Objective -------------------------------------------------------------------------------


@pytest.mark.parametrize("problem, num_classes, outputs", [
    ("classification", 2, 1), ("classification", 5, 5), ("regression", 0, 1)])
def test_head_sizes(problem, num_classes, outputs):
    assert Objective(problem, num_classes).n_outputs == outputs


OUT = torch.tensor([[1.0], [2.0], [3.0]])
Y1 = torch.tensor([1.0, 1.0, 1.0])  # errors 0, 1, 2


def test_regression_loss_is_mse_by_default():
    # (0**2 + 1**2 + 2**2) / 3 = 5/3
    assert Objective("regression").loss(OUT, Y1).item() == pytest.approx(5 / 3)


def test_regression_loss_is_huber_when_asked():
    # delta 1: 0.5 * e**2 for |e| <= 1, else |e| - 0.5 -> (0 + 0.5 + 1.5) / 3 = 2/3
    assert Objective("regression", loss_name="huber").loss(OUT, Y1).item() == \
        pytest.approx(2 / 3)
    # delta 2: every error is inside it, so 0.5 * e**2 -> (0 + 0.5 + 2) / 3
    assert Objective("regression", loss_name="huber", huber_delta=2.0).loss(OUT, Y1).item() == \
        pytest.approx(2.5 / 3)


def test_regression_outputs_map_back_to_the_original_scale_under_none():
    # y_fit = 1, 2, 3, 6: mean 3, population std sqrt((4 + 1 + 0 + 9) / 4) = sqrt(3.5)
    obj = Objective("regression",
                    target=TargetTransform("none", standardize=True).fit([1.0, 2, 3, 6]))
    pred = obj.predict(torch.tensor([[0.0], [1.0], [-2.0]]))
    assert pred.shape == (3, 1)
    np.testing.assert_allclose(obj.to_original(pred.numpy()),
                               [[3.0], [3 + math.sqrt(3.5)], [3 - 2 * math.sqrt(3.5)]],
                               rtol=1e-6)


def test_regression_outputs_map_back_to_the_original_scale_under_log1p():
    # log1p(0, 1, 3, 7) = ln2 * (0, 1, 2, 3): mean 1.5 ln2, population std ln2 * sqrt(1.25)
    obj = Objective("regression",
                    target=TargetTransform("log1p", standardize=True).fit([0.0, 1, 3, 7]))
    got = obj.to_original(obj.predict(torch.tensor([[0.0], [1.0]])).numpy())
    np.testing.assert_allclose(got, [[2 ** 1.5 - 1], [2 ** (1.5 + math.sqrt(1.25)) - 1]],
                               rtol=1e-6)


def test_batch_target_is_the_transformed_target_as_float32():
    obj = Objective("regression",
                    target=TargetTransform("none", standardize=True).fit([1.0, 2, 3, 6]))
    y = obj.batch_target(np.array([3.0, 3 + math.sqrt(3.5)]))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 1.0], atol=1e-6)
    assert Objective("classification", 3).batch_target([2, 0]).dtype == np.int64


def test_binary_predict_is_one_minus_sigmoid_and_sigmoid():
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3 / (3 + 1) = 3/4
    got = Objective("classification", 2).predict(torch.tensor([[0.0], [math.log(3)]]))
    np.testing.assert_allclose(got.numpy(), [[0.5, 0.5], [0.25, 0.75]], rtol=1e-6)


def test_multiclass_predict_is_softmax():
    # exp(0), exp(0), exp(ln 2) = 1, 1, 2 -> 1/4, 1/4, 1/2
    got = Objective("classification", 3).predict(torch.tensor([[0.0, 0.0, math.log(2)]]))
    np.testing.assert_allclose(got.numpy(), [[0.25, 0.25, 0.5]], rtol=1e-6)
    # a classification's predictions are already what the files hold
    np.testing.assert_array_equal(Objective("classification", 3).to_original(got.numpy()),
                                  got.numpy())


# --- check_target ----------------------------------------------------------------------------
# limit = max(20, int(5 % of rows)): 1000 rows -> 50, 100 rows -> max(20, 5) = 20


def distinct(n_rows: int, n_values: int, kind: str) -> np.ndarray:
    codes = np.arange(n_rows) % n_values
    return codes.astype(np.int64) if kind == "int" else codes * 0.5 + 0.25


@pytest.mark.parametrize("kind", ["int", "float"])
@pytest.mark.parametrize("n_rows, limit", [(1000, 50), (100, 20)])
def test_classification_target_at_the_limit_passes_one_more_fails(kind, n_rows, limit):
    check_target("classification", distinct(n_rows, limit, kind), "y", "train.csv")
    with pytest.raises(DataError, match=f"{limit + 1} distinct numeric values in {n_rows} rows "
                                        rf"\(a classification allows at most {limit}\)"):
        check_target("classification", distinct(n_rows, limit + 1, kind), "y", "train.csv")


def test_a_house_prices_target_is_refused_as_a_classification():
    # 1095 training rows, 553 distinct prices: limit max(20, int(54.75)) = 54
    prices = 34900 + 137 * (np.arange(1095) % 553)
    with pytest.raises(DataError) as err:
        check_target("classification", pd.Series(prices), "SalePrice", "data/train.csv")
    message = str(err.value)
    assert message.startswith("data/train.csv: target 'SalePrice' has 553 distinct")
    assert "1095 rows" in message and "at most 54" in message
    assert 'set competition.problem = "regression"' in message and "rmse" in message


def test_non_numeric_classification_targets_have_no_limit():
    check_target("classification", pd.Series([f"class{i}" for i in range(1000)]), "y", "t.csv")


def test_a_numeric_regression_target_passes():
    check_target("regression", np.random.default_rng(0).lognormal(size=1000), "y", "t.csv")


def test_a_string_regression_target_names_the_first_bad_rows():
    values = pd.Series(["1.5", "2", "abc", "3", None, "n/a"] + ["x"] * 10)
    with pytest.raises(DataError) as err:
        check_target("regression", values, "price", "train.csv")
    message = str(err.value)
    # None is missing, not bad; only the first five bad rows are named
    assert "target 'price' is not numeric (rows [2, 5, 6, 7, 8]: ['abc', 'n/a', 'x', 'x', 'x'])" \
        in message
    assert 'competition.problem = "classification"' in message


def test_a_boolean_target_is_not_numeric_for_a_regression():
    with pytest.raises(DataError, match="target 'survived' is not numeric"):
        check_target("regression", pd.Series([True, False, True]), "survived", "train.csv")


def test_a_boolean_regression_target_error_names_rows():
    with pytest.raises(DataError) as err:
        check_target("regression", pd.Series([True, False, True]), "survived", "train.csv")
    assert "rows []" not in str(err.value)
