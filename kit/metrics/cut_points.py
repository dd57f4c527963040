"""Cut points: labels for an ordinal or thresholded metric, cut from one number per row, the
cuts fitted on OOF predictions inside the CV.

Under `competition.metric = "qwk"` the model stays a classifier (prediction files keep their
`p_<class>` columns, so ensembles blend them as any other run's), and each row's score is its
expected class index, s = sum_k k * p_k (classes ordered by their sorted values). Labels are
cut from s: class k when cuts[k-1] <= s < cuts[k]. A binary target under mcc or f1_macro is
the same with one cut on s = p_<positive class> (a threshold).

The cuts are fitted by coordinate search, the method of Kaggle's QWK winners (Prudential,
PetFinder's "OptimizedRounder" with a per-cut grid instead of Nelder-Mead: QWK is a step
function of the cuts, so a gradient-free simplex stalls on its plateaus): start at k + 0.5
(plain rounding of s), move one cut at a time to the best of a grid of score quantiles
between its neighbours, repeat until no cut moves.

With row weights (data.weight) the cuts maximise the weighted metric, and the quantile grid
counts a row of weight w as w copies of it (np.quantile's linear rule on the repeated
rows), so a row of integer weight w fits the same cuts as w copies of the row. Weights below
1 are scaled so that the smallest positive one counts one copy: the grid is only where the
search looks, the weighted metric it maximises does not depend on the weights' scale.

Fitting the cuts on all OOF rows and then scoring those rows is a leak (the cuts learnt the
rows' labels). So the score a run reports is in-CV: each fold's rows are labelled with cuts
fitted on the other folds' OOF rows (of the same repeat; under cv.strategy = "time" the
earlier folds' only, the first fold rounding at k + 0.5). The cuts for the test predictions
are fitted on all OOF rows and saved in the run folder (cut_points.json, kit/run_folder/).

    fit = score_cv(oof_proba, labels, folds, get_metric("qwk"))
    fit.oof, fit.fold_scores    # the honest scores (weight=: data.weight's, weighted)
    apply(test_proba, fit.cuts)  # one-hot labels: the argmax-based submission writes them
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.metrics.registry import Metric

ORDINAL = ("qwk",)  # ordered classes, any number: C - 1 cuts on the expected index
BINARY = ("mcc", "f1_macro")  # two classes: one threshold on the positive class's probability
GRID = 32  # candidate positions per cut and pass (quantiles of the scores between neighbours)
MAX_PASSES = 8  # coordinate-search passes; it usually settles in 2 or 3


def applies(metric: Metric, classes: list) -> bool:
    """Whether `metric` scores labels cut from fitted cut points for these classes.

    >>> from kit.metrics.registry import get_metric
    >>> applies(get_metric("qwk"), [1, 2, 3]), applies(get_metric("accuracy"), [1, 2, 3])
    (True, False)
    """
    if metric.source:  # a competition's own metric.py scores argmax labels as it says
        return False
    return (metric.name in ORDINAL and len(classes) >= 2) or \
        (metric.name in BINARY and len(classes) == 2)


def expected_index(proba: np.ndarray) -> np.ndarray:
    """(N,) sum_k k * p_k: a row's score on the class-index scale (p_1 for two classes)."""
    proba = np.asarray(proba, dtype=np.float64)
    return proba @ np.arange(proba.shape[1], dtype=np.float64)


def default_cuts(n_classes: int) -> np.ndarray:
    """k + 0.5: plain rounding of the expected index (0.5 for two classes)."""
    return np.arange(n_classes - 1, dtype=np.float64) + 0.5


def cut(scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """(N,) class indices: the number of cuts at or below each score."""
    return np.searchsorted(np.asarray(cuts, dtype=np.float64), scores, side="right")


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) with a 1 at each row's label: what argmax-based metrics and submissions read."""
    out = np.zeros((len(labels), n_classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def apply(proba: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """The cut labels of probability rows, as one-hot rows (argmax gives the cut label)."""
    proba = np.asarray(proba)
    return one_hot(cut(expected_index(proba), cuts), proba.shape[1])


# --- fitting -------------------------------------------------------------------------------


def quadratic_kappa(labels: np.ndarray, pred: np.ndarray, n_classes: int,
                    weight: np.ndarray | None = None) -> float:
    """QWK from the confusion matrix, its cells summing the rows' weights when given
    (sklearn's cohen_kappa_score(weights="quadratic", sample_weight=weight), ~50x faster:
    the search scores it a few hundred times a fit)."""
    observed = np.bincount(labels * n_classes + pred, weights=weight, minlength=n_classes ** 2)
    observed = observed.reshape(n_classes, n_classes).astype(np.float64)
    total = observed.sum()
    expected = np.outer(observed.sum(1), observed.sum(0)) / (total if total > 0 else 1.0)
    index = np.arange(n_classes)
    weights = (index[:, None] - index[None, :]) ** 2
    denominator = (weights * expected).sum()
    return 1.0 - (weights * observed).sum() / denominator if denominator else 0.0


def _objective(metric: Metric, n_classes: int, weight: np.ndarray | None):
    """(labels, predicted labels) -> score, higher better, the rows weighted by `weight`."""
    if metric.name == "qwk":
        return lambda labels, pred: quadratic_kappa(labels, pred, n_classes, weight)
    return lambda labels, pred: metric(labels, one_hot(pred, n_classes), weight)


def fit(proba: np.ndarray, labels: np.ndarray, metric: Metric,
        weight: np.ndarray | None = None) -> np.ndarray:
    """Cuts maximising `metric` on these rows (weighted by `weight`), by coordinate search
    from k + 0.5."""
    proba = np.asarray(proba, dtype=np.float64)
    return fit_scores_cuts(expected_index(proba), labels, proba.shape[1], metric, weight)


def fit_scores_cuts(scores: np.ndarray, labels: np.ndarray, n_classes: int,
                    metric: Metric, weight: np.ndarray | None = None) -> np.ndarray:
    """`fit` on one score per row on the class-index scale (e.g. a regression on the index)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    cuts = default_cuts(n_classes)
    if not len(scores):
        return cuts
    score = _objective(metric, n_classes, weight)
    copies = _copies(weight, len(scores))
    best = score(labels, cut(scores, cuts))
    for _ in range(MAX_PASSES):
        moved = False
        for j in range(len(cuts)):
            for candidate in _candidates(scores, copies, cuts, j):
                trial = cuts.copy()
                trial[j] = candidate
                value = score(labels, cut(scores, trial))
                if value > best + 1e-12:  # strictly better: ties keep the cut where it is
                    best, cuts, moved = value, trial, True
        if not moved:
            break
    return cuts


def _copies(weight: np.ndarray | None, n: int) -> np.ndarray:
    """How many copies of each row the quantile grid counts (module doc): the weights,
    scaled up when the smallest positive one is below 1; one each without weights."""
    if weight is None:
        return np.ones(n)
    weight = np.asarray(weight, dtype=np.float64)
    positive = weight[weight > 0]
    return weight / min(positive.min(), 1.0) if len(positive) else weight


def _candidates(scores: np.ndarray, copies: np.ndarray, cuts: np.ndarray,
                j: int) -> np.ndarray:
    """Quantiles of the scores strictly between cut j's neighbours (the cuts stay ordered),
    each row counted `copies` times."""
    low = cuts[j - 1] if j > 0 else -np.inf
    high = cuts[j + 1] if j + 1 < len(cuts) else np.inf
    inside = (scores > low) & (scores < high) & (copies > 0)
    if not inside.any():
        return scores[inside]
    return np.unique(repeated_quantiles(scores[inside], copies[inside],
                                        np.linspace(0, 1, GRID)))


def repeated_quantiles(values: np.ndarray, copies: np.ndarray, q: np.ndarray) -> np.ndarray:
    """np.quantile(values repeated `copies` times, q) (its default linear rule), without
    repeating them; `copies` may be fractional (> 0).

    >>> repeated_quantiles(np.array([1.0, 2.0]), np.array([1.0, 3.0]), np.array([0, 0.5, 1]))
    array([1., 2., 2.])
    """
    order = np.argsort(values, kind="stable")
    values, ends = values[order], np.cumsum(copies[order])  # a value's copies end at `ends`
    position = q * (ends[-1] - 1)  # in the repeated rows
    low = np.floor(position)
    below = values[np.minimum(np.searchsorted(ends, low, side="right"), len(values) - 1)]
    above = values[np.minimum(np.searchsorted(ends, low + 1, side="right"), len(values) - 1)]
    return below + (position - low) * (above - below)


# --- in-CV scores --------------------------------------------------------------------------


def in_cv_labels(proba: np.ndarray, labels: np.ndarray, groups: np.ndarray, metric: Metric,
                 within: np.ndarray | None = None, *, forward: bool = False,
                 weight: np.ndarray | None = None) -> np.ndarray:
    """(N,) each row's label cut with cuts fitted on the rows of the other `groups` (folds)
    only, and of the same `within` (repeat) when given; `forward` (time-ordered folds, ids
    in time order): of the earlier folds only. A group with no such rows gets k + 0.5.
    `weight`: the rows' data.weight, which the fits weigh them by."""
    proba, labels, groups = np.asarray(proba), np.asarray(labels), np.asarray(groups)
    within = np.zeros(len(groups), np.int64) if within is None else np.asarray(within)
    out = np.empty(len(groups), dtype=np.int64)
    for group in np.unique(groups):
        rows = groups == group
        others = ~rows & (within == within[rows][0])
        if forward:  # a time split: cuts never learn from later rows
            others &= groups < group
        cuts = fit(proba[others], labels[others], metric,
                   None if weight is None else weight[others]) if others.any() else \
            default_cuts(proba.shape[1])
        out[rows] = cut(expected_index(proba[rows]), cuts)
    return out


@dataclass(frozen=True)
class CutScores:
    """What the in-CV procedure gives a run or a blend."""

    cuts: np.ndarray  # fitted on all OOF rows: for the test predictions
    fold_scores: list[float]  # each fold's rows, cut with cuts fitted on the other folds
    oof: float  # every OOF row cut with cuts fitted without its fold: the score to report
    oof_labels: np.ndarray  # (N,) those labels
    in_sample: float  # `cuts` scored on the rows they were fitted on: optimistic, a reference


def score_cv(proba: np.ndarray, labels: np.ndarray, folds: np.ndarray, metric: Metric, *,
             forward: bool = False, weight: np.ndarray | None = None) -> CutScores:
    """In-CV scores of OOF probabilities with fold ids `folds`, and the final cuts; with
    `weight` (data.weight) every fit and score weighs the rows by it."""
    proba, labels, folds = np.asarray(proba), np.asarray(labels), np.asarray(folds)
    n_classes = proba.shape[1]
    w = (lambda rows: None) if weight is None else (lambda rows: np.asarray(weight)[rows])
    oof_labels = in_cv_labels(proba, labels, folds, metric, forward=forward, weight=weight)
    fold_scores = [metric(labels[folds == f], one_hot(oof_labels[folds == f], n_classes),
                          w(folds == f)) for f in np.unique(folds)]
    cuts = fit(proba, labels, metric, weight)
    return CutScores(cuts, fold_scores, metric(labels, one_hot(oof_labels, n_classes), weight),
                     oof_labels, metric(labels, apply(proba, cuts), weight))


def fit_scores(parts: list[tuple[np.ndarray, np.ndarray, int]], metric: Metric, *,
               forward: bool = False, weights: list[np.ndarray] | None = None) -> list[float]:
    """Each fold fit's score, its rows cut with cuts fitted on the other fits of its repeat;
    `parts`: (proba, labels, repeat) per fit, as the pipeline holds them; `weights`: the
    data.weight of each part's rows."""
    proba = np.concatenate([p for p, _, _ in parts])
    labels = np.concatenate([y for _, y, _ in parts])
    fit_id = np.concatenate([np.full(len(y), i) for i, (_, y, _) in enumerate(parts)])
    repeat = np.concatenate([np.full(len(y), r) for _, y, r in parts])
    weight = None if weights is None else np.concatenate(weights)
    cut_labels = in_cv_labels(proba, labels, fit_id, metric, within=repeat, forward=forward,
                              weight=weight)
    n_classes = proba.shape[1]
    return [metric(labels[fit_id == i], one_hot(cut_labels[fit_id == i], n_classes),
                   None if weight is None else weight[fit_id == i])
            for i in range(len(parts))]


def record(scores: CutScores, metric: Metric, classes: list) -> dict:
    """cut_points.json's content (kit.run_folder.write_cut_points)."""
    return {"metric": metric.name, "score": "expected class index: sum_k k * p_<class k>",
            "classes": [str(c) for c in classes], "cut_points": [float(c) for c in scores.cuts],
            "oof_in_cv": float(scores.oof), "oof_in_sample": float(scores.in_sample),
            "folds_in_cv": [float(s) for s in scores.fold_scores]}
