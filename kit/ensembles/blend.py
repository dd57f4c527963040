"""Blending: the array math of ensembles, with no files and no run folders.

Members are M arrays of one shape (N, C): class probabilities (a classification) or one
`pred` column of values on the original scale (a regression, C = 1).

- soft: the weighted mean of the members. A regression averages in the metric's space:
  log1p space under rmsle (the mean of log(1 + y), i.e. a geometric-style mean), the values
  themselves under rmse, mae and r2. Predictions below 0 count as 0 under rmsle, as it scores.
- weighted: soft with w_m >= 0 and sum w_m = 1; weights given or fitted.
- hard: each member votes for its argmax class and the most votes win. A tie in votes goes
  to the tied class with the higher probability summed over members; a tie in that too
  (equal to 1e-12) to the lower class index, i.e. the earlier class in `classes`. The
  output is the one-hot of the winner, so the argmax-based submission builder and label
  metrics see exactly the vote; it is not a calibrated probability. A regression has no
  classes to vote for: hard voting is refused there.

Weight fitting. A classification minimises the blend's OOF log loss on the simplex (scipy
SLSQP), not the competition metric (built-in or a competition's metric.py): accuracy, F1,
QWK, MCC and MAP@k are step functions of the weights (zero
gradient almost everywhere, many equal optima) and AUC depends on ranks only, so a direct
search overfits the OOF rows it searches on. The log loss of a blend is minus the mean log
of a linear function of the weights, hence smooth and convex: the optimum is global and
reproducible. A regression minimises its metric itself, in the metric's space: squared
error (rmse, r2; in log1p space for rmsle; SLSQP) or absolute error (mae; a linear program;
mape: the same on rows divided by |y|). All are convex in the weights, and rmse, rmsle and
r2 are monotone in the squared error, so these weights are the metric's own optimum; smape
and a competition's own regression metric have no such loss: hill climbing scores them
directly. Hill climbing climbs on the metric itself, except a labels metric (accuracy, F1,
QWK, MCC, balanced accuracy, or a metric.py with SCORES = "labels"), which it replaces by
log loss (see THRESHOLDED). The cross-validated blend fits weights on all
folds but one and blends the held-out fold with them: that is the score to trust (the
in-sample one is optimistic).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np

from kit.ensembles.hill_climbing import DEFAULT_HILL, HillSettings, bagged_hill_climb
from kit.ensembles.stacking import member_weights
from kit.ensembles.stacking import stack as level2
from kit.errors import ConfigError, DataError
from kit.metrics.registry import Metric, as_metric, from_space, get_metric, to_space

METHODS = ("soft", "hard", "weighted", "hill", "stack")
# hill climbing's objective for a thresholded metric, one that scores labels (a step
# function of the weights: ties everywhere, so a greedy search stops on noise); probability,
# ranked and value metrics are their own objective (MAP@k moves with k guesses a row)
THRESHOLDED = "labels"  # kit.metrics.registry.SCORES
# The error a regression's weights minimise, by metric: rmse, rmsle and r2 are monotone in
# the (log1p space, for rmsle) squared error, mae is the absolute error, mape the absolute
# error relative to |y|.
REGRESSION_LOSS = {"rmse": "squared", "rmsle": "squared", "r2": "squared", "mae": "absolute",
                   "mape": "relative"}


# --- spaces and votes -----------------------------------------------------------------


def _stack(members: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(M, N, C) float64 from a list of M (N, C) arrays; shapes must agree."""
    shapes = {np.shape(p) for p in members}
    if len(members) == 0 or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"expected one or more (N, C) arrays of one shape, got {sorted(shapes)}")
    return np.asarray(members, dtype=np.float64)


def soft_vote(members: Sequence[np.ndarray], weights: Sequence[float] | None = None, *,
              metric: str | Metric | None = None) -> np.ndarray:
    """Weighted mean of M (N, C) arrays in `metric`'s space; equal weights when none given.

    >>> soft_vote([np.array([[0.8, 0.2]]), np.array([[0.4, 0.6]])]).round(3).tolist()
    [[0.6, 0.4]]
    >>> soft_vote([np.array([[100.0]]), np.array([[10000.0]])], metric="rmsle").round(2).tolist()
    [[1004.04]]
    """
    stack = _stack(members)
    w = np.full(len(stack), 1 / len(stack)) if weights is None else np.asarray(weights, float)
    return from_space(np.tensordot(w / w.sum(), to_space(stack, metric), axes=1), metric)


def hard_vote(probas: Sequence[np.ndarray]) -> np.ndarray:
    """Majority vote of the members' argmax classes, as a one-hot (N, C) float64 array.

    Ties in votes: higher summed probability, then lower class index (module docstring).
    """
    stack = _stack(probas)
    n_classes = stack.shape[2]
    votes = (stack.argmax(2)[..., None] == np.arange(n_classes)).sum(0)  # (N, C) counts
    # Rounded so that float summation order cannot break what is a tie on paper.
    summed = np.round(stack.sum(0), 12)
    tied = votes == votes.max(1, keepdims=True)
    winner = np.where(tied, summed, -np.inf).argmax(1)  # argmax keeps the lowest index
    return np.eye(n_classes)[winner]


def fold_vote_hard(fold_test_probas: list[np.ndarray]) -> np.ndarray:
    """Hard vote of the fold models' test probabilities (config: train.fold_vote = "hard").

    >>> folds = [np.array([[0.6, 0.4]]), np.array([[0.55, 0.45]]), np.array([[0.05, 0.95]])]
    >>> fold_vote_hard(folds)  # two folds of three vote class 0; their mean favours class 1
    array([[1., 0.]])
    """
    return hard_vote(fold_test_probas)


def check_method(method: str, problem: str) -> None:
    """Refuse a method that cannot apply: an unknown name, or a hard vote on a regression."""
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if method == "hard" and problem == "regression":
        raise ConfigError(
            "--method hard votes for classes, but these runs are a regression "
            "(competition.problem = \"regression\") whose predictions are values; use "
            "--method soft (the mean in the metric's space) or --method weighted"
        )


# --- weights -----------------------------------------------------------------------------


def fit_weights(members: Sequence[np.ndarray], labels: np.ndarray, *,
                metric: str | Metric | None = None, weight: np.ndarray | None = None
                ) -> np.ndarray:
    """Weights on the simplex for the blend (module docstring): log loss of probabilities,
    or, when `metric` is a regression metric, that metric's error in its space; each row's
    loss weighed by `weight` (data.weight) when given."""
    stack = _stack(members)
    if len(stack) == 1:
        return np.ones(1)
    rows = _row_weights(weight, stack.shape[1])
    if metric is None or as_metric(metric).problem == "classification":
        return _fit_log_loss(stack, np.asarray(labels, dtype=np.int64), rows)
    metric = as_metric(metric).name
    if metric not in REGRESSION_LOSS:
        raise ConfigError(
            f"no weight-fitting loss for regression metric {metric!r}; valid: "
            f"{', '.join(REGRESSION_LOSS)}; use --method hill (it climbs on the metric "
            "itself), or give --weights"
        )
    if metric == "rmsle" and (np.asarray(labels) < 0).any():
        bad = np.asarray(labels)[np.asarray(labels) < 0][:3].tolist()
        raise DataError(f"rmsle is undefined for negative targets (e.g. {bad}); use "
                        "competition.metric = \"rmse\" or fix the target column")
    z, target = to_space(stack[:, :, 0].T, metric), to_space(labels, metric)  # (N, M), (N,)
    if REGRESSION_LOSS[metric] == "relative":  # mape: |z w - y| / |y| (sklearn's epsilon)
        scale = np.maximum(np.abs(target), np.finfo(np.float64).eps)[:, None]
        return _fit_absolute(z / scale, target / scale[:, 0], rows)
    if REGRESSION_LOSS[metric] == "absolute":
        return _fit_absolute(z, target, rows)
    return _fit_squared(z, target, rows)


def _row_weights(weight: np.ndarray | None, n: int) -> np.ndarray:
    """Each row's share of a loss: data.weight normalised to sum 1, or 1 / N each."""
    if weight is None:
        return np.full(n, 1 / n)
    weight = np.asarray(weight, dtype=np.float64)
    return weight / weight.sum()


def _fit_log_loss(stack: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    # Only each row's true-class probability enters the log loss: (N, M).
    true = np.clip(stack[:, np.arange(stack.shape[1]), labels].T, 1e-15, 1.0)

    def loss(w: np.ndarray) -> float:
        return float(-rows @ np.log(np.maximum(true @ w, 1e-15)))

    def grad(w: np.ndarray) -> np.ndarray:
        return -(rows / np.maximum(true @ w, 1e-15)) @ true

    return _simplex_minimize(loss, grad, true.shape[1])


def _fit_squared(z: np.ndarray, target: np.ndarray, rows: np.ndarray) -> np.ndarray:
    # Scaled so that equal weights have loss 1: SLSQP's tolerance (ftol 1e-6) is absolute,
    # and a SalePrice error squared is ~1e9 while a log1p-space one may be ~1e-3.
    scale = float(np.sqrt(rows @ (z.mean(1) - target) ** 2)) or 1.0
    z, target = z / scale, target / scale

    def loss(w: np.ndarray) -> float:
        return float(rows @ (z @ w - target) ** 2)

    def grad(w: np.ndarray) -> np.ndarray:
        return 2 * z.T @ (rows * (z @ w - target))

    return _simplex_minimize(loss, grad, z.shape[1])


def _fit_absolute(z: np.ndarray, target: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Least absolute error on the simplex as a linear program: variables (w, e), minimise
    rows @ e subject to -e <= z @ w - target <= e (SLSQP needs a smooth loss; this is not)."""
    from scipy import sparse
    from scipy.optimize import linprog

    n, m = z.shape
    eye = sparse.identity(n, format="csr")
    a_ub = sparse.vstack([sparse.hstack([z, -eye]), sparse.hstack([-z, -eye])])
    b_ub = np.concatenate([target, -target])
    a_eq = np.concatenate([np.ones(m), np.zeros(n)])[None]
    cost = np.concatenate([np.zeros(m), rows])
    result = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0],
                     bounds=[(0, None)] * (m + n), method="highs")
    start = np.full(m, 1 / m)
    if not result.success:
        return start

    def loss(w: np.ndarray) -> float:
        return float(rows @ np.abs(z @ w - target))

    return _clean(result.x[:m], loss, start)


def _simplex_minimize(loss: Callable, grad: Callable, n_members: int) -> np.ndarray:
    from scipy.optimize import minimize  # here: soft / hard runs skip its ~1 s import

    start = np.full(n_members, 1 / n_members)
    result = minimize(
        loss, start, jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * n_members,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": np.ones_like}],
    )
    return _clean(result.x, loss, start)


def _clean(w: np.ndarray, loss: Callable, start: np.ndarray) -> np.ndarray:
    """Solver weights back on the simplex; equal weights when the solver did worse."""
    w = np.clip(w, 0.0, None)
    w[w < 1e-6] = 0.0  # solver dust; a member at 1e-9 is a member left out
    w = w / w.sum() if w.sum() > 0 else start
    return w if loss(w) <= loss(start) else start


def hill_objective(metric: str | Metric) -> Metric:
    """The metric hill climbing minimises: log loss for a thresholded metric, else itself
    (a competition's metric.py included)."""
    metric = as_metric(metric)
    return get_metric("logloss") if metric.scores == THRESHOLDED else metric


def fit_hill(members: Sequence[np.ndarray], labels: np.ndarray, *, metric: str | Metric,
             settings: HillSettings = DEFAULT_HILL, weight: np.ndarray | None = None
             ) -> np.ndarray:
    """Hill-climbing weights (kit/ensembles/hill_climbing.py) for `metric`'s objective, in
    its space, scored with the rows' `weight` (data.weight) when given."""
    stack, target = _stack(members), hill_objective(metric)
    sign = -1.0 if target.mode == "max" else 1.0
    if target.problem == "regression":
        def loss(z: np.ndarray) -> float:
            return sign * target(labels, from_space(z, metric), weight)
    else:
        def loss(p: np.ndarray) -> float:
            return sign * target(labels, proper(p), weight)
    return bagged_hill_climb(to_space(stack, metric), loss, settings)


def proper(p: np.ndarray) -> np.ndarray:
    """Probabilities again after negative weights: clipped at 0, rows summing to 1."""
    p = np.clip(p, 1e-15, None)
    return p / p.sum(axis=1, keepdims=True)


def cross_validated_blend(
    members: Sequence[np.ndarray], labels: np.ndarray, folds: np.ndarray, *,
    metric: str | Metric | None = None, fit: Callable | None = None,
    weight: np.ndarray | None = None, forward: bool = False,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """OOF blend where each fold's rows use weights fitted on the other folds only, by
    `fit(members, labels, weight=)` (default: fit_weights), the rows weighed by `weight`;
    `forward` (a time split): on the earlier folds only, equal weights for the first.

    Returns the (N, C) blend and {fold: weights}; score it with the competition metric.
    """
    fit = fit or functools.partial(fit_weights, metric=metric)
    stack, folds, labels = _stack(members), np.asarray(folds), np.asarray(labels)
    if len(np.unique(folds)) < 2:
        raise DataError(
            f"cannot cross-validate weights: the OOF rows hold {len(np.unique(folds))} fold(s); "
            "train the members with cv.n_splits >= 2 or give --weights"
        )
    oof = np.empty(stack.shape[1:])
    fold_weights = {}
    for fold in np.unique(folds):
        held = folds == fold
        fit_on = folds < fold if forward else ~held
        if not fit_on.any():  # a time split's first validated fold: nothing before it
            w = np.full(len(stack), 1 / len(stack))
        else:
            w = fit(stack[:, fit_on], labels[fit_on],
                    weight=None if weight is None else np.asarray(weight)[fit_on])
        oof[held] = soft_vote(stack[:, held], w, metric=metric)
        fold_weights[int(fold)] = w
    return oof, fold_weights


def parse_weights(text: str, n_members: int) -> np.ndarray:
    """'0.3,0.7' -> array([0.3, 0.7]); one non-negative number per run, normalised to sum 1."""
    try:
        w = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ConfigError(
            f"--weights {text!r}: not a comma-separated list of numbers; e.g. --weights 0.3,0.7"
        ) from None
    if len(w) != n_members:
        raise ConfigError(
            f"--weights {text!r} gives {len(w)} weight(s) for {n_members} run folders; "
            "give one weight per run, in the order of the runs"
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"--weights {text!r}: weights must be finite, >= 0, not all zero")
    return w / w.sum()


# --- members aligned, and what a method makes of them -----------------------------------


@dataclasses.dataclass(frozen=True)
class Stack:
    """Members aligned by id: predictions (M, N, C) / (M, T, C) plus the shared columns.

    A regression has no classes, C = 1 (the `pred` column) and float `labels` (the targets).
    """

    problem: str  # "classification" or "regression"
    classes: list[str]  # empty for a regression
    oof_ids: np.ndarray
    folds: np.ndarray
    targets: np.ndarray  # original labels or values, as in oof.parquet
    labels: np.ndarray  # class indices into `classes`; a regression's float targets
    oof: np.ndarray
    test_ids: np.ndarray
    test: np.ndarray
    # the OOF rows' data.weight (oof.parquet `weight`, the members' runs were weighted by
    # it): every score, weight fit and level-2 model weighs its rows; None: unweighted
    weight: np.ndarray | None = None
    weight_name: str = ""  # the data.weight column the members were scored with
    # a time split's runs: fitted weights for a fold's rows come from earlier folds only
    forward: bool = False

    def score(self, metric: Metric, pred: np.ndarray, rows: np.ndarray | None = None) -> float:
        """`metric` of `pred` against the labels (of the `rows` mask), weighted as the runs were."""
        if rows is None:
            return metric(self.labels, pred, self.weight)
        return metric(self.labels[rows], pred[rows],
                      None if self.weight is None else self.weight[rows])

    @property
    def target_classes(self) -> list:
        """`classes` in the targets' own type for the submission: 1.0 (a float), not "1.0"."""
        typed = {str(t): t for t in np.unique(self.targets)} if self.classes else {}
        return [typed.get(c, c) for c in self.classes]


@dataclasses.dataclass(frozen=True)
class Blend:
    """What a method made of a Stack: predictions, weights and the ensemble's OOF scores."""

    method: str
    weights: np.ndarray
    weights_source: str  # "equal", "given" or "fitted"
    oof: np.ndarray  # (N, C); for fitted weights the cross-validated blend
    test: np.ndarray  # (T, C)
    score_in_sample: float
    score_cv: float | None  # only when weights were fitted on the same OOF rows
    fold_weights: dict[int, np.ndarray]
    objective: str = ""  # hill: the metric it minimised (log loss for a thresholded metric)
    objective_cv: float | None = None  # that objective on the cross-validated blend
    coefficients: dict | None = None  # stack: the level-2 model's (mean over folds)
    settings: dict | None = None  # hill: its HillSettings

    @property
    def score(self) -> float:
        """The score to report: cross-validated when weights were fitted, else in-sample."""
        return self.score_in_sample if self.score_cv is None else self.score_cv


def blend(stack: Stack, method: str, metric: Metric, weights: np.ndarray | None = None, *,
          hill: HillSettings = DEFAULT_HILL) -> Blend:
    """Apply `method` to aligned members; weighted without `weights` and hill fit them on
    OOF (and report the cross-validated score)."""
    check_method(method, stack.problem)
    n_members, labels = len(stack.oof), stack.labels
    equal = np.full(n_members, 1 / n_members)
    if method == "hard":
        oof, test = hard_vote(stack.oof), hard_vote(stack.test)
        return Blend(method, equal, "equal", oof, test, stack.score(metric, oof), None, {})
    if method == "soft" or weights is not None:
        w = equal if weights is None else np.asarray(weights, float)
        oof, test = soft_vote(stack.oof, w, metric=metric), soft_vote(stack.test, w, metric=metric)
        source = "equal" if weights is None else "given"
        return Blend(method, w, source, oof, test, stack.score(metric, oof), None, {})
    if method == "stack":
        return _stack_blend(stack, metric)
    if method == "hill":
        fit = functools.partial(fit_hill, metric=metric, settings=hill)
    else:
        fit = functools.partial(fit_weights, metric=metric)
    w = fit(stack.oof, labels, weight=stack.weight)
    fix = proper if stack.problem == "classification" else (lambda p: p)
    in_sample = stack.score(metric, fix(soft_vote(stack.oof, w, metric=metric)))
    cv_oof, fold_weights = cross_validated_blend(stack.oof, labels, stack.folds, metric=metric,
                                                 fit=fit, weight=stack.weight,
                                                 forward=stack.forward)
    cv_oof, test = fix(cv_oof), fix(soft_vote(stack.test, w, metric=metric))
    objective = hill_objective(metric) if method == "hill" else None
    return Blend(method, w, "fitted", cv_oof, test, in_sample, stack.score(metric, cv_oof),
                 fold_weights, objective.name if objective else "",
                 stack.score(objective, cv_oof) if objective else None,
                 settings=dataclasses.asdict(hill) if method == "hill" else None)


def _stack_blend(stack: Stack, metric: Metric) -> Blend:
    """Level-2 model on the OOF predictions (kit/ensembles/stacking.py); its OOF is cross-validated."""
    oof, test, coefficients = level2(stack.oof, stack.test, stack.labels, stack.folds,
                                     problem=stack.problem, metric=metric.name,
                                     weight=stack.weight, forward=stack.forward)
    score = stack.score(metric, oof)
    return Blend("stack", member_weights(coefficients, len(stack.oof)), "fitted", oof, test,
                 score, score, {}, coefficients=coefficients)
