"""Metric registry: a name maps to a function of (targets, predictions), a mode and what it
scores (labels, probabilities, ranked guesses or values), which decides the problem kind and
the form of the submission (kit/submission.py `submission_form`).

Classification: targets are class indices (int, shape N), predictions (N, C) probabilities
with rows summing to 1. Regression: targets are values (float, N) and predictions (N, 1)
or (N,) values, both on the competition's original scale. Every built-in takes an optional
`weight` (N,) per row (data.weight): the weighted score, as scikit-learn's sample_weight.

`map@k` is a family (map@3, map@5): the top k classes of each row by probability, the mean
average precision of one true class among them. A competition may bring its own metric in
`competitions/<slug>/metric.py` (kit/metrics/competition.py); `resolve_metric(cfg)` there is the one
lookup that sees both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from kit.errors import ConfigError, DataError

# What a metric scores, so what a submission must hold for it: "labels" (one class per row,
# e.g. accuracy), "probabilities" (a score per class: Kaggle ranks or weighs them, auc,
# logloss), "ranked" (the top k classes of a row, best first: MAP@k), "values" (a
# regression's number).
SCORES = ("labels", "probabilities", "ranked", "values")
RANKED = re.compile(r"map@(-?\d+)")  # the map@k family: map@3 is MAP over the top 3 guesses


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    mode: str  # "max": higher is better, "min": lower is better
    scores: str = "labels"  # one of SCORES
    k: int = 0  # "ranked": how many guesses a row holds (map@3: 3)
    source: str = ""  # the competition's metric.py that defined it; "" for a built-in
    weighted: bool = True  # takes per-row weights (a metric.py score() with a `weight` argument)

    @property
    def problem(self) -> str:
        """The problem kind it scores: "regression" for values, else "classification"."""
        return "regression" if self.scores == "values" else "classification"

    def __call__(self, labels: np.ndarray, proba: np.ndarray,
                 weight: np.ndarray | None = None) -> float:
        proba = np.asarray(proba)
        if self.problem == "regression":
            proba = proba.reshape(len(proba), -1)[:, 0]
        if weight is None:
            return float(self.fn(np.asarray(labels), proba))
        if not self.weighted:
            raise ConfigError(f"metric {self.name!r} ({self.source}) takes no weights, and "
                              "data.weight is set: give its score() a `weight=None` argument "
                              "(per-row weights, (N,)), or unset data.weight")
        return float(self.fn(np.asarray(labels), proba, np.asarray(weight, dtype=np.float64)))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


METRICS: dict[str, Metric] = {}


def register(name: str, mode: str, scores: str = "labels"):
    if scores not in SCORES or scores == "ranked":  # ranked ones are the map@k family
        raise ValueError(f"metric {name!r}: scores = {scores!r}; valid: {', '.join(SCORES)}")

    def deco(fn):
        METRICS[name] = Metric(name, fn, mode, scores)
        return fn

    return deco


@register("accuracy", "max")
def accuracy(labels, proba, weight=None):
    return skm.accuracy_score(labels, proba.argmax(1), sample_weight=weight)


@register("f1_macro", "max")
def f1_macro(labels, proba, weight=None):
    return skm.f1_score(labels, proba.argmax(1), average="macro", labels=np.arange(proba.shape[1]),
                        sample_weight=weight)


@register("logloss", "min", "probabilities")
def logloss(labels, proba, weight=None):
    return skm.log_loss(labels, np.clip(proba, 1e-15, 1), labels=np.arange(proba.shape[1]),
                        sample_weight=weight)


@register("auc", "max", "probabilities")
def auc(labels, proba, weight=None):
    if proba.shape[1] == 2:
        return skm.roc_auc_score(labels, proba[:, 1], sample_weight=weight)
    return skm.roc_auc_score(labels, proba, multi_class="ovr", labels=np.arange(proba.shape[1]),
                             sample_weight=weight)


@register("balanced_accuracy", "max")
def balanced_accuracy(labels, proba, weight=None):
    return skm.balanced_accuracy_score(labels, proba.argmax(1), sample_weight=weight)


@register("mcc", "max")
def mcc(labels, proba, weight=None):
    """Matthews correlation of the argmax class (multi-class: sklearn's R_K statistic)."""
    return skm.matthews_corrcoef(labels, proba.argmax(1), sample_weight=weight)


@register("qwk", "max")
def qwk(labels, proba, weight=None):
    """Quadratic weighted kappa of the argmax class; the classes' order is their index order
    (`classes`: sorted target values, so numbers in numeric order)."""
    return skm.cohen_kappa_score(labels, proba.argmax(1), weights="quadratic",
                                 labels=np.arange(proba.shape[1]), sample_weight=weight)


def top_k(proba: np.ndarray, k: int) -> np.ndarray:
    """(N, k) class indices of each row's k highest probabilities, best first; a tie goes to
    the lower class index (a stable sort), so OOF scores and submissions rank alike.

    >>> top_k(np.array([[0.2, 0.5, 0.3]]), 2)
    array([[1, 2]])
    """
    return np.argsort(-np.asarray(proba), axis=1, kind="stable")[:, :k]


def map_at_k(labels: np.ndarray, proba: np.ndarray, k: int, weight=None) -> float:
    """Mean average precision at k with one true class per row: 1 / rank of the true class
    among the top k guesses, 0 when it is not there (Kaggle's MAP@k); weighted by row."""
    hits = top_k(proba, k) == np.asarray(labels)[:, None]  # (N, k), at most one True a row
    return float(np.average((hits / np.arange(1, k + 1)).sum(1), weights=weight))


@register("rmse", "min", "values")
def rmse(y, pred, weight=None):
    return skm.root_mean_squared_error(y, pred, sample_weight=weight)


@register("rmsle", "min", "values")
def rmsle(y, pred, weight=None):
    """Predictions below 0 are scored as 0 (log1p is undefined below -1 and Kaggle's
    targets under rmsle are non-negative); negative targets are refused."""
    if (y < 0).any():
        raise DataError(f"rmsle is undefined for negative targets (e.g. {y[y < 0][:3].tolist()}); "
                        "use competition.metric = \"rmse\" or fix the target column")
    return skm.root_mean_squared_log_error(y, np.clip(pred, 0, None), sample_weight=weight)


@register("mae", "min", "values")
def mae(y, pred, weight=None):
    return skm.mean_absolute_error(y, pred, sample_weight=weight)


@register("r2", "max", "values")
def r2(y, pred, weight=None):
    return skm.r2_score(y, pred, sample_weight=weight)


@register("mape", "min", "values")
def mape(y, pred, weight=None):
    """Mean absolute percentage error as a fraction (sklearn's: 0.1 is 10 %); a zero target
    divides by machine epsilon, so such rows dominate: Kaggle's MAPE does the same."""
    return skm.mean_absolute_percentage_error(y, pred, sample_weight=weight)


@register("smape", "min", "values")
def smape(y, pred, weight=None):
    """Symmetric MAPE in percent, 0 to 200, as Kaggle scores it (Web Traffic Time Series
    Forecasting): mean of 200 |p - y| / (|y| + |p|), a row with y = p = 0 counting 0."""
    denominator = np.abs(y) + np.abs(pred)
    ratio = np.divide(2 * np.abs(pred - y), denominator, out=np.zeros(len(y)),
                      where=denominator > 0)
    return 100 * float(np.average(ratio, weights=weight))


def to_space(values: np.ndarray, metric: str | Metric | None = None) -> np.ndarray:
    """Predictions in the space `metric` measures error in: log1p(max(v, 0)) under rmsle.

    >>> to_space(np.array([-5.0, 99.0]), "rmsle").round(3)
    array([0.   , 4.605])
    """
    values = np.asarray(values, dtype=np.float64)
    return np.log1p(np.clip(values, 0, None)) if _name(metric) == "rmsle" else values


def from_space(z: np.ndarray, metric: str | Metric | None = None) -> np.ndarray:
    """The inverse of `to_space` (on its range)."""
    return np.expm1(z) if _name(metric) == "rmsle" else z


def _name(metric: str | Metric | None) -> str | None:
    return metric.name if isinstance(metric, Metric) else metric


def names_for(problem: str) -> list[str]:
    """The built-in names that score `problem` ("map@k" stands for the map@<k> family)."""
    family = ["map@k"] if problem == "classification" else []
    return sorted([n for n, m in METRICS.items() if m.problem == problem] + family)


HOW_TO_ADD = ("or define your own in competitions/<slug>/metric.py (NAME, MODE, SCORES, "
              "score(labels, pred); see templates/metric.py)")


def as_metric(metric: str | Metric) -> Metric:
    """A Metric as it is (a competition's, from resolve_metric), a built-in's name looked up."""
    return metric if isinstance(metric, Metric) else get_metric(metric)


def get_metric(name: str, problem: str | None = None) -> Metric:
    """The built-in metric `name` (map@k: map@3, ...); with `problem`, one that scores that
    problem kind. A competition's own metric: kit.metrics.competition.resolve_metric(cfg)."""
    metric = METRICS.get(name) or _ranked(name)
    if metric is None:
        valid = names_for(problem) if problem else names_for("classification") + \
            names_for("regression")
        raise ConfigError(f"unknown metric {name!r}; valid: {', '.join(valid)} "
                          f"(set competition.metric), {HOW_TO_ADD}")
    return check_problem(metric, problem)


def check_problem(metric: Metric, problem: str | None) -> Metric:
    """`metric` when it scores `problem` (or `problem` is None); else a ConfigError."""
    if problem is not None and metric.problem != problem:
        where = f" ({metric.source})" if metric.source else ""
        raise ConfigError(
            f"competition.metric = {metric.name!r}{where} scores a {metric.problem}, but "
            f"competition.problem = {problem!r}; use one of {', '.join(names_for(problem))}, "
            f"or set competition.problem = \"{metric.problem}\"")
    return metric


def _ranked(name: str) -> Metric | None:
    """map@<k> as a Metric, None for another name; a k below 1 is a ConfigError."""
    found = RANKED.fullmatch(str(name))
    if found is None:
        return None
    k = int(found.group(1))
    if k < 1:
        raise ConfigError(f"competition.metric = {name!r}: k = {k} guesses; map@k needs "
                          "k >= 1 (e.g. map@3)")
    return Metric(name, lambda labels, proba, weight=None: map_at_k(labels, proba, k, weight),
                  "max", "ranked", k)

