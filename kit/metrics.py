"""Metric registry: a name maps to a function of (targets, predictions), a mode and what it
scores (labels, probabilities or values), which decides the problem kind and the form of the
submission (kit/submission.py `submission_form`).

Classification: targets are class indices (int, shape N), predictions (N, C) probabilities
with rows summing to 1. Regression: targets are values (float, N) and predictions (N, 1)
or (N,) values, both on the competition's original scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from kit.errors import ConfigError, DataError

# What a metric scores, so what a submission must hold for it: "labels" (one class per row,
# e.g. accuracy), "probabilities" (a score per class: Kaggle ranks or weighs them, auc,
# logloss), "values" (a regression's number). Ranked guesses (MAP@k) will be a fourth.
SCORES = ("labels", "probabilities", "values")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    mode: str  # "max": higher is better, "min": lower is better
    scores: str = "labels"  # one of SCORES

    @property
    def problem(self) -> str:
        """The problem kind it scores: "regression" for values, else "classification"."""
        return "regression" if self.scores == "values" else "classification"

    def __call__(self, labels: np.ndarray, proba: np.ndarray) -> float:
        proba = np.asarray(proba)
        if self.problem == "regression":
            proba = proba.reshape(len(proba), -1)[:, 0]
        return float(self.fn(np.asarray(labels), proba))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


METRICS: dict[str, Metric] = {}


def register(name: str, mode: str, scores: str = "labels"):
    if scores not in SCORES:
        raise ValueError(f"metric {name!r}: scores = {scores!r}; valid: {', '.join(SCORES)}")

    def deco(fn):
        METRICS[name] = Metric(name, fn, mode, scores)
        return fn

    return deco


@register("accuracy", "max")
def accuracy(labels, proba):
    return skm.accuracy_score(labels, proba.argmax(1))


@register("f1_macro", "max")
def f1_macro(labels, proba):
    return skm.f1_score(labels, proba.argmax(1), average="macro", labels=np.arange(proba.shape[1]))


@register("logloss", "min", "probabilities")
def logloss(labels, proba):
    return skm.log_loss(labels, np.clip(proba, 1e-15, 1), labels=np.arange(proba.shape[1]))


@register("auc", "max", "probabilities")
def auc(labels, proba):
    if proba.shape[1] == 2:
        return skm.roc_auc_score(labels, proba[:, 1])
    return skm.roc_auc_score(labels, proba, multi_class="ovr", labels=np.arange(proba.shape[1]))


@register("rmse", "min", "values")
def rmse(y, pred):
    return skm.root_mean_squared_error(y, pred)


@register("rmsle", "min", "values")
def rmsle(y, pred):
    """Predictions below 0 are scored as 0 (log1p is undefined below -1 and Kaggle's
    targets under rmsle are non-negative); negative targets are refused."""
    if (y < 0).any():
        raise DataError(f"rmsle is undefined for negative targets (e.g. {y[y < 0][:3].tolist()}); "
                        "use competition.metric = \"rmse\" or fix the target column")
    return skm.root_mean_squared_log_error(y, np.clip(pred, 0, None))


@register("mae", "min", "values")
def mae(y, pred):
    return skm.mean_absolute_error(y, pred)


@register("r2", "max", "values")
def r2(y, pred):
    return skm.r2_score(y, pred)


def to_space(values: np.ndarray, metric: str | None = None) -> np.ndarray:
    """Predictions in the space `metric` measures error in: log1p(max(v, 0)) under rmsle.

    >>> to_space(np.array([-5.0, 99.0]), "rmsle")  # [0.0, 4.605...]
    """
    values = np.asarray(values, dtype=np.float64)
    return np.log1p(np.clip(values, 0, None)) if metric == "rmsle" else values


def from_space(z: np.ndarray, metric: str | None = None) -> np.ndarray:
    """The inverse of `to_space` (on its range)."""
    return np.expm1(z) if metric == "rmsle" else z


def names_for(problem: str) -> list[str]:
    return sorted(n for n, m in METRICS.items() if m.problem == problem)


def get_metric(name: str, problem: str | None = None) -> Metric:
    """The metric `name`; with `problem`, one that scores that problem kind."""
    if name not in METRICS:
        valid = names_for(problem) if problem else sorted(METRICS)
        raise ConfigError(f"unknown metric {name!r}; valid: {', '.join(valid)} "
                          "(set competition.metric)")
    metric = METRICS[name]
    if problem is not None and metric.problem != problem:
        raise ConfigError(
            f"competition.metric = {name!r} scores a {metric.problem}, but competition.problem "
            f"= {problem!r}; use one of {', '.join(names_for(problem))}, or set "
            f"competition.problem = \"{metric.problem}\"")
    return metric
