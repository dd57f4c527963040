"""Regression metrics pinned to numbers worked out by hand, and the problem-kind contract of
get_metric."""

import math
import re

import numpy as np
import pytest

from kit.errors import ConfigError, DataError
from kit.metrics.registry import METRICS, SCORES, get_metric

Y = np.array([1.0, 2.0, 3.0])
PRED = np.array([1.0, 2.0, 5.0])  # errors 0, 0, 2

# By hand from Y and PRED (mean of Y is 2):
#   rmse  = sqrt((0 + 0 + 2**2) / 3)                      = sqrt(4/3)       = 1.1547...
#   mae   = (0 + 0 + 2) / 3                               = 2/3
#   r2    = 1 - SS_res / SS_tot = 1 - 4 / ((1-2)**2 + 0 + (3-2)**2) = 1 - 4/2 = -1
#   rmsle = sqrt((0 + 0 + (ln 6 - ln 4)**2) / 3)          = ln(1.5) / sqrt(3) = 0.2341...
BY_HAND = {
    "rmse": math.sqrt(4 / 3),
    "mae": 2 / 3,
    "r2": -1.0,
    "rmsle": math.log(1.5) / math.sqrt(3),
}


@pytest.mark.parametrize("name", sorted(BY_HAND))
def test_regression_metric_matches_the_hand_computed_value(name):
    assert get_metric(name, "regression")(Y, PRED) == pytest.approx(BY_HAND[name], rel=1e-12)


def test_r2_of_a_good_fit_by_hand():
    # y = 1..4 (mean 2.5, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5); one error of 1: SS_res = 1
    assert get_metric("r2")(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 5])) == \
        pytest.approx(1 - 1 / 5)


@pytest.mark.parametrize("name", sorted(BY_HAND))
def test_column_and_flat_predictions_score_the_same(name):
    metric = get_metric(name, "regression")
    assert metric(Y, PRED.reshape(-1, 1)) == metric(Y, PRED) == \
        pytest.approx(BY_HAND[name], rel=1e-12)


def test_rmsle_scores_a_negative_prediction_as_zero_and_never_nan():
    rmsle = get_metric("rmsle", "regression")
    y = np.array([1.0, 2.0])
    # pred 0 for y = 1: (ln 1 - ln 2)**2 = ln(2)**2; the other row is exact -> ln(2) / sqrt(2)
    expected = math.log(2) / math.sqrt(2)
    for low in (0.0, -0.5, -1.0, -5.0, -1e300):  # log1p(-5) alone would be NaN
        score = rmsle(y, np.array([[low], [2.0]]))
        assert math.isfinite(score)
        assert score == pytest.approx(expected, rel=1e-12)


def test_rmsle_refuses_negative_targets():
    with pytest.raises(DataError, match=r"negative targets \(e\.g\. \[-2\.0\]\).*rmse"):
        get_metric("rmsle", "regression")(np.array([1.0, -2.0, 3.0]), PRED)


def valid_names(message: str) -> set[str]:
    found = re.search(r"use one of (.*?), or set", message) or re.search(r"valid: (.*?) \(",
                                                                         message)
    assert found, message
    return set(found.group(1).split(", "))


CLASSIFICATION = {"accuracy", "auc", "balanced_accuracy", "f1_macro", "logloss", "map@k", "mcc",
                  "qwk"}
REGRESSION = {"mae", "mape", "r2", "rmse", "rmsle", "smape"}


def test_a_regression_metric_for_a_classification_is_refused_with_the_valid_ones():
    with pytest.raises(ConfigError, match='set competition.problem = "regression"') as err:
        get_metric("rmse", "classification")
    assert "'rmse' scores a regression" in str(err.value)
    assert valid_names(str(err.value)) == CLASSIFICATION


def test_a_classification_metric_for_a_regression_is_refused_with_the_valid_ones():
    with pytest.raises(ConfigError, match='set competition.problem = "classification"') as err:
        get_metric("accuracy", "regression")
    assert valid_names(str(err.value)) == REGRESSION


def test_an_unknown_metric_lists_the_metrics_of_the_problem_kind():
    with pytest.raises(ConfigError, match="unknown metric 'rmsq'") as err:
        get_metric("rmsq", "regression")
    assert valid_names(str(err.value)) == REGRESSION


@pytest.mark.parametrize("name, mode", [("rmse", "min"), ("rmsle", "min"), ("mae", "min"),
                                        ("r2", "max")])
def test_modes_and_problem_kinds(name, mode):
    metric = get_metric(name, "regression")
    assert (metric.mode, metric.problem) == (mode, "regression")
    low, high = 0.1, 0.9
    assert metric.better(high, low) is (mode == "max")
    assert metric.better(low, high) is (mode == "min")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_says_what_it_scores_and_that_decides_its_submission(name):
    """The contract sweep: a registered metric scores labels, probabilities or values; its
    problem kind and the form kind = "auto" writes follow from that alone."""
    import pandas as pd

    from kit.submission import submission_form

    metric = METRICS[name]
    assert metric.scores in SCORES
    assert metric.problem == ("regression" if metric.scores == "values" else "classification")
    sample = pd.DataFrame({"id": [1, 2], "target": [0, 0]})
    kind = submission_form(sample, metric=name, classes=None).kind
    assert kind == {"labels": "label", "probabilities": "proba", "values": "value"}[
        metric.scores]


def test_kaggle_scores_auc_and_logloss_on_probabilities():
    assert {n for n, m in METRICS.items() if m.scores == "probabilities"} == {"auc", "logloss"}
    assert {n for n, m in METRICS.items() if m.scores == "labels"} == {
        "accuracy", "balanced_accuracy", "f1_macro", "mcc", "qwk"}


# --- the built-ins of issue 30: map@k, qwk, balanced_accuracy, mcc, mape, smape -------------

# Four rows, five classes; the true classes 0, 1, 2, 3. Each row's top 3 by probability:
#   row 0: [0, 1, 2] -> the true 0 at rank 1: 1
#   row 1: [0, 2, 1] -> the true 1 at rank 3: 1/3   (p 0.3 for class 2 beats 0.2 for class 1)
#   row 2: [4, 3, 0] -> the true 2 missing:  0
#   row 3: [1, 3, 0] -> the true 3 at rank 2: 1/2  (classes 0 and 4 tie at 0.2 for the third
#                                                   guess: the lower index, 0, takes it)
# MAP@3 = (1 + 1/3 + 0 + 1/2) / 4 = 11/24; MAP@1 = accuracy of the top guess = 1/4;
# MAP@5 also finds row 2's class 2 fifth (after 1, tied with it at 0.05): 1/5.
MAP_TRUE = np.array([0, 1, 2, 3])
MAP_PROBA = np.array([
    [0.50, 0.30, 0.10, 0.05, 0.05],
    [0.40, 0.20, 0.30, 0.05, 0.05],
    [0.15, 0.05, 0.05, 0.25, 0.50],
    [0.20, 0.35, 0.00, 0.25, 0.20],
])


def test_map_at_3_matches_the_hand_computed_value():
    metric = get_metric("map@3", "classification")
    assert (metric.mode, metric.scores, metric.k, metric.problem) == \
        ("max", "ranked", 3, "classification")
    assert metric(MAP_TRUE, MAP_PROBA) == pytest.approx(11 / 24, rel=1e-12)
    assert get_metric("map@1")(MAP_TRUE, MAP_PROBA) == pytest.approx(1 / 4)
    assert get_metric("map@5")(MAP_TRUE, MAP_PROBA) == pytest.approx((1 + 1 / 3 + 1 / 5 + 1 / 2) / 4)


def test_top_k_breaks_ties_by_the_lower_class_index():
    from kit.metrics.registry import top_k

    np.testing.assert_array_equal(top_k(np.array([[0.2, 0.4, 0.2, 0.2]]), 3), [[1, 0, 2]])


@pytest.mark.parametrize("name", ["map@0", "map@-2"])
def test_map_at_k_below_one_is_refused(name):
    with pytest.raises(ConfigError, match=r"map@k needs k >= 1"):
        get_metric(name)


def test_qwk_mcc_balanced_accuracy_by_hand():
    # truth 0 0 1 2, argmax guesses 0 1 1 0 (classes 0, 1, 2)
    y = np.array([0, 0, 1, 2])
    proba = np.eye(3)[[0, 1, 1, 0]]
    # balanced accuracy: recall of class 0 = 1/2, class 1 = 1, class 2 = 0 -> 1/2
    assert get_metric("balanced_accuracy")(y, proba) == pytest.approx(0.5)
    # QWK: weights w_ij = (i - j)^2 / 4. Observed O: (0,0) 1, (0,1) 1, (1,1) 1, (2,0) 1:
    #   sum w O = 0 + 1/4 + 0 + 1 = 5/4. Expected E = rows (2,1,1) x cols (2,2,0) / 4:
    #   E_00 = 1, E_01 = 1, E_10 = 1/2, E_11 = 1/2, E_20 = 1/2, E_21 = 1/2 ->
    #   sum w E = 0 + 1/4 + 1/8 + 0 + 1/2 + 1/8 = 1. QWK = 1 - (5/4) / 1 = -1/4
    assert get_metric("qwk")(y, proba) == pytest.approx(-0.25)
    # MCC (Gorodkin's R_K): c = 2 correct, s = 4, p = (2, 2, 0) guessed, t = (2, 1, 1) true:
    #   (c s - p.t) / sqrt((s^2 - p.p)(s^2 - t.t)) = (8 - 6) / sqrt((16 - 8)(16 - 6)) = 2 / sqrt(80)
    assert get_metric("mcc")(y, proba) == pytest.approx(2 / math.sqrt(80))


def test_mape_and_smape_by_hand():
    y, pred = np.array([1.0, 2.0, 4.0, 0.0]), np.array([2.0, 2.0, 3.0, 0.0])
    # mape (a fraction): (1/1 + 0 + 1/4 + 0 / eps = 0) / 4 = 1.25 / 4
    assert get_metric("mape", "regression")(y, pred) == pytest.approx(1.25 / 4)
    # smape (percent): 200 * (1/3 + 0 + 1/7 + 0 (0/0 counts 0)) / 4
    assert get_metric("smape", "regression")(y, pred) == pytest.approx(50 * (1 / 3 + 1 / 7))
    assert get_metric("mape").mode == get_metric("smape").mode == "min"


def test_an_unknown_metric_says_how_to_bring_one():
    with pytest.raises(ConfigError) as err:
        get_metric("gini")
    message = str(err.value)
    assert "map@k" in message and "qwk" in message and "rmse" in message
    assert "competitions/<slug>/metric.py" in message and "\n" not in message
