"""Metrics summed batch by batch equal kit/metrics/registry.py's on the same rows (auc: within its
stated bound)."""

import numpy as np
import pytest

from kit.metrics.registry import get_metric
from kit.out_of_core.metrics import MetricSums


def batched(metric, labels, pred, n_classes=0, size=700):
    sums = MetricSums(metric, n_classes)
    for start in range(0, len(labels), size):
        sums.add(labels[start:start + size], pred[start:start + size])
    return sums.value(), sums.bound


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("name", ["accuracy", "logloss", "f1_macro", "auc"])
def test_classification_metrics_match_in_batches(name, k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 5000)
    p = rng.dirichlet(np.ones(k), 5000)
    p[np.arange(5000), y] += 0.3
    p /= p.sum(axis=1, keepdims=True)
    metric = get_metric(name)
    value, bound = batched(metric, y, p, k)
    if name == "auc":
        assert 0 < bound < 1e-4
        assert abs(value - metric(y, p)) <= bound * (1 + 1e-9)  # at most: all ties one way
    else:
        assert value == pytest.approx(metric(y, p), rel=1e-12)


def test_auc_bound_covers_ties_in_one_bin():
    y = np.array([0, 1, 0, 1])
    p = np.column_stack([1 - np.array([0.5, 0.5, 0.2, 0.9]), [0.5, 0.5, 0.2, 0.9]])
    value, bound = batched(get_metric("auc"), y, p, 2)
    assert value == pytest.approx(get_metric("auc")(y, p)) and bound == pytest.approx(0.125)


@pytest.mark.parametrize("name", ["rmse", "rmsle", "mae", "r2"])
def test_regression_metrics_match_in_batches(name):
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, size=4000)
    pred = (y + rng.normal(0, 0.5, 4000))[:, None]
    metric = get_metric(name, "regression")
    assert batched(metric, y, pred)[0] == pytest.approx(metric(y, pred), rel=1e-10)
