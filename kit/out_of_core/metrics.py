"""Metrics summed batch by batch: the score of predictions too many to hold at once (the
out-of-core run's OOF, kit/out_of_core/), equal to kit/metrics/registry.py's on the same rows.

accuracy, logloss, f1_macro (per-class confusion counts), rmse, rmsle, mae and r2 (power
sums) are exact up to float rounding. auc counts each class's predicted probabilities in
AUC_BINS equal bins over [0, 1] (2**20 for binary: 16 MiB of counts), the Mann-Whitney
statistic on the bins: a positive and a negative in the same bin count one half, as a
tie does, so the result is within `bound` of the exact AUC, bound = half the share of
positive-negative pairs that share a bin (printed by the caller; about 1e-6 for spread-out
scores). Multi-class auc is the macro mean over one-vs-rest, as sklearn's "ovr".

With row weights (data.weight: `add(..., weight)`) every count and sum adds the rows'
weights instead of ones, which gives scikit-learn's `sample_weight` scores (auc: the
weighted Mann-Whitney statistic, on the same bins).

    sums = MetricSums(get_metric("auc"), n_classes=2)
    for labels, proba, weight in batches:
        sums.add(labels, proba, weight)  # weight None: every row counts once
    score, bound = sums.value(), sums.bound
"""

from __future__ import annotations

import numpy as np

from kit.metrics.registry import Metric

AUC_BINS = 1 << 20
AUC_BINS_MULTI = 1 << 16  # per class when there are more than two


class MetricSums:
    def __init__(self, metric: Metric, n_classes: int = 0):
        self.name, self.n = metric.name, 0.0  # n: the rows' weights summed (rows, unweighted)
        self.bound = 0.0
        k = max(n_classes, 1)
        if self.name == "auc":  # float counts: weights (float64 counts rows exactly to 2**53)
            self.bins = AUC_BINS if k <= 2 else AUC_BINS_MULTI
            self.hist = np.zeros((1 if k <= 2 else k, 2, self.bins))
        elif self.name == "f1_macro":
            self.counts = np.zeros((3, k))  # tp, fp, fn per class
        else:
            self.sums = np.zeros(4)

    def add(self, labels: np.ndarray, pred: np.ndarray, weight: np.ndarray | None = None) -> None:
        """A batch of rows; `weight` (N,): data.weight, each row counted that many times."""
        labels, pred = np.asarray(labels), np.asarray(pred, dtype=np.float64)
        w = np.ones(len(labels)) if weight is None else np.asarray(weight, dtype=np.float64)
        self.n += w.sum()
        name = self.name
        if name == "accuracy":
            self.sums[0] += w[pred.argmax(1) == labels].sum()
        elif name == "logloss":
            p = np.clip(pred, 1e-15, 1)
            p = p / p.sum(axis=1, keepdims=True)  # as sklearn's log_loss renormalizes
            self.sums[0] -= (w * np.log(p[np.arange(len(labels)), labels])).sum()
        elif name == "f1_macro":
            guess, k = pred.argmax(1), self.counts.shape[1]
            hit = guess == labels
            self.counts[0] += np.bincount(labels[hit], w[hit], minlength=k)
            self.counts[1] += np.bincount(guess[~hit], w[~hit], minlength=k)
            self.counts[2] += np.bincount(labels[~hit], w[~hit], minlength=k)
        elif name == "auc":
            columns = [1] if self.hist.shape[0] == 1 else range(self.hist.shape[0])
            for row, c in enumerate(columns):
                b = np.minimum((pred[:, c] * self.bins).astype(np.int64), self.bins - 1)
                positive = labels == c
                self.hist[row, 1] += np.bincount(b[positive], w[positive], minlength=self.bins)
                self.hist[row, 0] += np.bincount(b[~positive], w[~positive], minlength=self.bins)
        else:  # regression: pred (N,) or (N, 1)
            y, p = labels.astype(np.float64), pred.reshape(len(pred), -1)[:, 0]
            if name == "rmsle":
                y, p = np.log1p(y), np.log1p(np.clip(p, 0, None))
            err = p - y
            self.sums += [(w * err * err).sum(), (w * np.abs(err)).sum(), (w * y).sum(),
                          (w * y * y).sum()]

    def value(self) -> float:
        n, name = self.n if self.n > 0 else 1.0, self.name
        if name == "accuracy":
            return float(self.sums[0] / n)
        if name == "logloss":
            return float(self.sums[0] / n)
        if name == "f1_macro":
            tp, fp, fn = self.counts
            denominator = 2 * tp + fp + fn
            return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0)))
        if name == "auc":
            scores, bounds = [], []
            for negative, positive in self.hist:
                pairs = positive.sum() * negative.sum()
                below = np.cumsum(negative) - negative  # negatives in lower bins
                scores.append((positive * below).sum() / pairs
                              + 0.5 * (positive * negative).sum() / pairs)
                bounds.append(0.5 * (positive * negative).sum() / pairs)
            self.bound = float(np.mean(bounds))
            return float(np.mean(scores))
        sq, absolute, s1, s2 = self.sums
        if name in ("rmse", "rmsle"):
            return float(np.sqrt(sq / n))
        if name == "mae":
            return float(absolute / n)
        if name == "r2":
            return float(1 - sq / (s2 - s1 * s1 / n))
        raise ValueError(f"no streamed form of metric {name!r}")
