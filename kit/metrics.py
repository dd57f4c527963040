"""Metric registry: a name maps to a function of (labels, probabilities) and a mode.

`labels` are class indices (int, shape N); `proba` is (N, C) with rows summing to 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from kit.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    mode: str  # "max": higher is better, "min": lower is better

    def __call__(self, labels: np.ndarray, proba: np.ndarray) -> float:
        return float(self.fn(np.asarray(labels), np.asarray(proba)))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


METRICS: dict[str, Metric] = {}


def register(name: str, mode: str):
    def deco(fn):
        METRICS[name] = Metric(name, fn, mode)
        return fn

    return deco


@register("accuracy", "max")
def accuracy(labels, proba):
    return skm.accuracy_score(labels, proba.argmax(1))


@register("f1_macro", "max")
def f1_macro(labels, proba):
    return skm.f1_score(labels, proba.argmax(1), average="macro", labels=np.arange(proba.shape[1]))


@register("logloss", "min")
def logloss(labels, proba):
    return skm.log_loss(labels, np.clip(proba, 1e-15, 1), labels=np.arange(proba.shape[1]))


@register("auc", "max")
def auc(labels, proba):
    if proba.shape[1] == 2:
        return skm.roc_auc_score(labels, proba[:, 1])
    return skm.roc_auc_score(labels, proba, multi_class="ovr", labels=np.arange(proba.shape[1]))


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ConfigError(
            f"unknown metric {name!r}; valid: {', '.join(sorted(METRICS))} "
            "(set competition.metric)"
        )
    return METRICS[name]
