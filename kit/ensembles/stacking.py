"""Stacking: a level-2 model on the members' OOF predictions, trained with the same folds.

Level-2 features are the members' predictions in a space where a linear model fits them:
the logit of each member's positive-class probability (two classes), the log of every
class probability (more classes), or the prediction in the metric's space (a regression:
log1p under rmsle). The level-2 model is scikit-learn's LogisticRegression (classification)
or a ridge regression shrunk toward the members' plain average (regression): it fits the
target's distance from that average on the members' distances from it, so a strong penalty
gives equal weights rather than none, and RidgeCV picks the penalty on the training folds
(leave-one-out). Fitted weights often lose to the plain average out of sample (the
"forecast combination puzzle"); on House Prices' six kinds a ridge toward zero scored
0.1259 cross-validated RMSLE, this one 0.1252 (the stack column of docs/ensembles.md,
Measured: six kinds per competition). For fold k the level-2 model is fitted on the other
folds' OOF rows and predicts fold k's rows, so a level-2 OOF prediction never used its
own fold: that OOF is the honest score. The test predictions
average the fold models' predictions on the members' test predictions. The coefficients
reported are the fold models' mean (for a regression, the weight each member gets).

    oof, test, coefficients = stack(stack.oof, stack.test, labels, folds, problem="regression",
                                    metric="rmsle")
"""

from __future__ import annotations

import numpy as np

from kit.errors import DataError
from kit.metrics.registry import from_space, to_space


def features(members: np.ndarray, problem: str, metric: str | None) -> np.ndarray:
    """(N, F) level-2 features from (M, N, C) member predictions (module doc)."""
    if problem == "regression":
        return to_space(members[:, :, 0], metric).T
    p = np.clip(members, 1e-6, 1 - 1e-6)
    if members.shape[2] == 2:
        return np.log(p[:, :, 1] / p[:, :, 0]).T
    return np.log(p).transpose(1, 0, 2).reshape(members.shape[1], -1)


RIDGE_ALPHAS = np.logspace(-3, 5, 33)  # the penalties RidgeCV tries


class TowardAverage:
    """Ridge on the members' distances from their plain average (module doc): with
    x (N, M), it predicts mean(x) + b + (x - mean(x)) @ c, so its member weights are
    1 / M + c (minus their mean, which the average's shift absorbs) and sum to 1."""

    def __init__(self, strength: float | None = None):
        from sklearn.linear_model import Ridge, RidgeCV

        self.ridge = RidgeCV(alphas=RIDGE_ALPHAS) if strength is None else Ridge(alpha=strength)

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight=None) -> TowardAverage:
        base = x.mean(axis=1)
        self.ridge.fit(x - base[:, None], y - base, sample_weight=sample_weight)
        c = self.ridge.coef_
        # (x - mean(x)) @ c = x @ (c - mean(c)): each row of x - mean(x) sums to 0
        self.coef_ = 1 / x.shape[1] + c - c.mean()
        self.intercept_ = self.ridge.intercept_
        fixed = getattr(self.ridge, "alpha", None)  # Ridge has one; RidgeCV picks alpha_
        self.alpha_ = float(self.ridge.alpha_ if fixed is None else fixed)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef_ + self.intercept_


def _model(problem: str, strength: float | None):
    from sklearn.linear_model import LogisticRegression

    if problem == "regression":
        return TowardAverage(strength)
    return LogisticRegression(C=1.0 / (strength or 1.0), max_iter=2000)


def stack(oof: np.ndarray, test: np.ndarray, labels: np.ndarray, folds: np.ndarray, *,
          problem: str, metric: str | None = None, strength: float | None = None,
          weight: np.ndarray | None = None, forward: bool = False
          ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(level-2 OOF (N, C), test (T, C), {"coef": .., "intercept": .., "penalty": [per fold]}) for
    (M, N, C) OOF and (M, T, C) test member predictions. `strength` is the ridge's alpha
    (default: RidgeCV's choice per fold) or logistic regression's 1 / C (default 1);
    `weight`: each row's data.weight, the level-2 model's sample_weight. `forward` (a time
    split): fold k's model is fitted on the earlier folds only; the first fold's rows get
    the members' plain average (nothing precedes them), and the test predictions come from
    a model fitted on every OOF row (the test rows follow them all), whose coefficients are
    the ones reported ("penalty" then lists every fit's, that one last)."""
    folds = np.asarray(folds)
    if len(np.unique(folds)) < 2:
        raise DataError("stacking needs OOF rows from two or more folds; train the members "
                        "with cv.n_splits >= 2")
    x, x_test = features(oof, problem, metric), features(test, problem, metric)
    y = to_space(labels, metric) if problem == "regression" else labels  # fitted in one space
    out, test_parts, coefs, intercepts, alphas = np.empty(oof.shape[1:]), [], [], [], []
    fits = [(folds == k, folds < k if forward else folds != k) for k in np.unique(folds)]
    if forward:  # one more fit, on every row, for the test rows
        fits.append((np.zeros(len(folds), dtype=bool), np.ones(len(folds), dtype=bool)))
    for held, fit_on in fits:
        if not fit_on.any():  # a time split's first fold: the members' plain average
            out[held] = _average(oof[:, held], problem, metric)
            continue
        rows = None if weight is None else np.asarray(weight)[fit_on]
        model = _model(problem, strength).fit(x[fit_on], y[fit_on], sample_weight=rows)
        if held.any():
            out[held] = _predict(model, x[held], problem, oof.shape[2])
        if not forward or not held.any():  # forward: the test rows from the all-rows fit
            test_parts.append(_predict(model, x_test, problem, oof.shape[2]))
        coefs.append(np.atleast_2d(model.coef_))
        intercepts.append(np.atleast_1d(model.intercept_))
        alphas.append(model.alpha_ if problem == "regression" else 1.0 / model.C)
    test_pred = np.mean(test_parts, axis=0)
    if forward:  # the test rows' model is the all-rows fit: report its coefficients
        coefs, intercepts = coefs[-1:], intercepts[-1:]
    if problem == "regression":  # averaged in the metric's space, like soft voting
        out, test_pred = from_space(out, metric), from_space(test_pred, metric)
    return out, test_pred, {"coef": np.mean(coefs, axis=0).tolist(),
                            "intercept": np.mean(intercepts, axis=0).tolist(),
                            "penalty": alphas}


def _average(members: np.ndarray, problem: str, metric: str | None) -> np.ndarray:
    """The members' plain average (M, N, C) -> (N, C), a regression's in its metric's space
    (as stacking fits it)."""
    if problem == "regression":
        return to_space(members, metric).mean(axis=0)
    return members.mean(axis=0)


def _predict(model, x: np.ndarray, problem: str, n_columns: int) -> np.ndarray:
    if problem == "regression":
        return model.predict(x)[:, None]
    proba = np.zeros((len(x), n_columns))
    proba[:, model.classes_] = model.predict_proba(x)  # a class absent from the fit: 0
    return proba


def member_weights(coefficients: dict, n_members: int) -> np.ndarray:
    """One number per member for the report's weight column: its coefficient (two classes,
    regression) or the mean absolute coefficient over its class columns."""
    coef = np.abs(np.asarray(coefficients["coef"]))
    if coef.shape[1] == n_members:
        return np.asarray(coefficients["coef"])[0]
    return coef.reshape(coef.shape[0], n_members, -1).mean(axis=(0, 2))
