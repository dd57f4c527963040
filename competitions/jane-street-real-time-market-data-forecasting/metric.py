"""Jane Street's metric: the sample-weighted zero-mean R², 1 - Σ w (y - ŷ)² / Σ w y². Unlike
scikit-learn's r2 it does not centre on the mean: predicting 0 scores 0."""

import numpy as np

NAME = "weighted_zero_mean_r2"
MODE = "max"
SCORES = "values"


def score(labels: np.ndarray, pred: np.ndarray, weight=None) -> float:
    w = np.ones(len(labels)) if weight is None else np.asarray(weight, dtype=np.float64)
    y, p = np.asarray(labels, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    return float(1 - np.sum(w * (y - p) ** 2) / np.sum(w * y ** 2))
