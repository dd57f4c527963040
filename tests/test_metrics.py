"""Regression metrics pinned to numbers worked out by hand, and the problem-kind contract of
get_metric."""

import math
import re

import numpy as np
import pytest

from kit.errors import ConfigError, DataError
from kit.metrics import METRICS, SCORES, get_metric

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


CLASSIFICATION = {"accuracy", "auc", "f1_macro", "logloss"}
REGRESSION = {"mae", "r2", "rmse", "rmsle"}


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
    assert {n for n, m in METRICS.items() if m.scores == "labels"} == {"accuracy", "f1_macro"}
