"""kit.ensembles.blend: voting and weight fitting on arrays with known answers, both problem kinds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kit.ensembles import blend as blending
from kit.errors import ConfigError, DataError
from kit.metrics.registry import get_metric

# --- classification: voting ---------------------------------------------------------------


def test_soft_vote_is_the_mean_and_weighted_uses_the_weights():
    a, b = np.array([[0.8, 0.2], [0.1, 0.9]]), np.array([[0.4, 0.6], [0.3, 0.7]])
    np.testing.assert_allclose(blending.soft_vote([a, b]), [[0.6, 0.4], [0.2, 0.8]])
    np.testing.assert_allclose(blending.soft_vote([a, b], [0.25, 0.75]), [[0.5, 0.5], [0.25, 0.75]])


def test_hard_vote_majority_wins_even_against_summed_probability():
    members = [np.array([[0.45, 0.55, 0.0]])] * 2 + [np.array([[0.9, 0.1, 0.0]])]
    # class 0 has the larger summed probability (1.8 vs 1.2) but one vote against two
    np.testing.assert_array_equal(blending.hard_vote(members), [[0.0, 1.0, 0.0]])


def test_hard_vote_two_two_tie_goes_to_higher_summed_probability():
    members = [np.array([[0.1, 0.5, 0.4]])] * 2 + [np.array([[0.0, 0.3, 0.7]])] * 2
    # votes 2-2 between classes 1 and 2; sums 1.6 vs 2.2: the higher class index wins here
    np.testing.assert_array_equal(blending.hard_vote(members), [[0.0, 0.0, 1.0]])


def test_hard_vote_full_tie_goes_to_lower_class_index():
    members = [np.array([[0.0, 0.5, 0.5 - 0.1]])] * 2 + [np.array([[0.0, 0.45, 0.55]])] * 2
    # votes 2-2 and sums 1.9 vs 1.9 (equal on paper, not bit-for-bit in float): class 1
    out = blending.hard_vote(members)
    np.testing.assert_array_equal(out, [[0.0, 1.0, 0.0]])
    assert out.dtype == np.float64


def test_fold_vote_hard_is_one_hot_majority_per_row():
    folds = [
        np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
        np.array([[0.7, 0.3], [0.6, 0.4], [0.4, 0.6]]),
        np.array([[0.2, 0.8], [0.3, 0.7], [0.45, 0.55]]),
    ]
    np.testing.assert_array_equal(blending.fold_vote_hard(folds), [[1, 0], [0, 1], [0, 1]])
    with pytest.raises(ValueError):
        blending.fold_vote_hard([np.ones((3, 2)), np.ones((2, 2))])


# --- classification: weights ----------------------------------------------------------------


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_fit_weights_recover_the_member_that_is_the_truth():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    truth = _softmax(3.0 * np.eye(3)[labels] + 0.3 * rng.normal(size=(600, 3)))
    noise = [rng.dirichlet(np.ones(3), 600) for _ in range(2)]
    w = blending.fit_weights([noise[0], truth, noise[1]], labels)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[1] > 0.95, w


def test_cross_validated_blend_scores_each_fold_with_weights_fitted_elsewhere():
    # Fold 0: member A right, B wrong; fold 1 the reverse. Weights fitted on one fold pick
    # the member that is wrong on the other, so the held-out accuracy is 0, while the
    # in-sample fit (0.5 / 0.5, argmax tie -> class 0) is right everywhere.
    right, wrong = [0.9, 0.1], [0.1, 0.9]
    a = np.array([right, right, wrong, wrong])
    b = np.array([wrong, wrong, right, right])
    labels, folds = np.zeros(4, dtype=int), np.array([0, 0, 1, 1])
    accuracy = get_metric("accuracy")
    w = blending.fit_weights([a, b], labels)
    np.testing.assert_allclose(w, [0.5, 0.5], atol=1e-6)
    assert accuracy(labels, blending.soft_vote([a, b], w)) == 1.0
    blend, fold_weights = blending.cross_validated_blend([a, b], labels, folds)
    np.testing.assert_allclose(fold_weights[0], [0, 1], atol=1e-6)
    np.testing.assert_allclose(fold_weights[1], [1, 0], atol=1e-6)
    np.testing.assert_allclose(blend, np.array([wrong] * 4), atol=1e-6)
    assert accuracy(labels, blend) == 0.0


def test_parse_weights_normalises_and_refuses_bad_lists():
    np.testing.assert_allclose(blending.parse_weights("1,3", 2), [0.25, 0.75])
    for text, says in [("0.3", "1 weight(s) for 2"), ("a,b", "comma-separated"), ("-1,2", ">= 0")]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            blending.parse_weights(text, 2)


# --- regression: voting in the metric's space ------------------------------------------------


def col(*values) -> np.ndarray:
    """A regression member: one `pred` column, (N, 1)."""
    return np.array(values, dtype=float)[:, None]


def test_soft_vote_under_rmsle_averages_log1p_and_under_rmse_the_values():
    members = [col(100.0), col(10000.0)]
    # expm1((log1p(100) + log1p(10000)) / 2) = sqrt(101 * 10001) - 1 = 1004.0378...
    want_rmsle = np.sqrt(101 * 10001) - 1
    np.testing.assert_allclose(blending.soft_vote(members, metric="rmsle"), [[want_rmsle]])
    assert want_rmsle == pytest.approx(1004.0378, abs=1e-4)
    for name in ("rmse", "mae", "r2", None):
        np.testing.assert_allclose(blending.soft_vote(members, metric=name), [[5050.0]])
    # given weights apply in the same space: 0.25 / 0.75 of log1p
    want = np.expm1(0.25 * np.log1p(100) + 0.75 * np.log1p(10000))
    np.testing.assert_allclose(blending.soft_vote(members, [1, 3], metric="rmsle"), [[want]])


def test_rmsle_counts_negative_predictions_as_zero():
    out = blending.soft_vote([col(-50.0), col(8.0)], metric="rmsle")
    np.testing.assert_allclose(out, [[np.expm1(np.log1p(8.0) / 2)]])  # sqrt(9) - 1 = 2
    np.testing.assert_allclose(out, [[2.0]])


def test_hard_voting_is_refused_for_a_regression_with_the_fix():
    with pytest.raises(ConfigError, match="--method hard") as info:
        blending.check_method("hard", "regression")
    assert "--method soft" in str(info.value) and "--method weighted" in str(info.value)
    blending.check_method("hard", "classification")  # still fine there
    with pytest.raises(ConfigError, match="'median' is not one of soft, hard, weighted"):
        blending.check_method("median", "regression")


# --- regression: weights that minimise the metric --------------------------------------------


@pytest.mark.parametrize("metric", ["rmse", "rmsle", "mae", "r2"])
def test_regression_weights_find_the_member_that_is_the_truth(metric):
    rng = np.random.default_rng(1)
    y = rng.lognormal(12, 0.4, 400)  # house prices: ~160k, skewed
    noisy = y * rng.lognormal(0, 0.3, 400) + rng.normal(0, 2e4, 400)
    w = blending.fit_weights([noisy[:, None], y[:, None]], y, metric=metric)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[1] > 0.99, w


def two_member_optimum(a, b, y):
    """argmin over w in [0, 1] of sum((w a + (1 - w) b - y)^2), by hand (a parabola in w)."""
    d = a - b
    return float(np.clip(d @ (y - b) / (d @ d), 0, 1))


def test_rmse_and_rmsle_weights_differ_as_their_spaces_say():
    # A doubles the small target, B is 50 % high on the large one. In absolute terms B's
    # error (500) dwarfs A's (10), so rmse trusts A; in log terms A's error (log 21/11 =
    # 0.65) is the larger, so rmsle leans to B.
    y, a, b = np.array([10.0, 1000.0]), np.array([20.0, 1000.0]), np.array([10.0, 1500.0])
    want_rmse = two_member_optimum(a, b, y)
    want_rmsle = two_member_optimum(np.log1p(a), np.log1p(b), np.log1p(y))
    assert want_rmse == pytest.approx(0.9996, abs=1e-4) and want_rmsle == pytest.approx(0.282, abs=1e-3)
    w_rmse = blending.fit_weights([a[:, None], b[:, None]], y, metric="rmse")
    w_rmsle = blending.fit_weights([a[:, None], b[:, None]], y, metric="rmsle")
    np.testing.assert_allclose(w_rmse, [want_rmse, 1 - want_rmse], atol=1e-4)
    np.testing.assert_allclose(w_rmsle, [want_rmsle, 1 - want_rmsle], atol=1e-4)
    rmsle = get_metric("rmsle")
    blend_rmsle = blending.soft_vote([a[:, None], b[:, None]], w_rmsle, metric="rmsle")
    blend_rmse = blending.soft_vote([a[:, None], b[:, None]], w_rmse, metric="rmsle")
    assert rmsle(y, blend_rmsle) < rmsle(y, blend_rmse)


def test_mae_weights_minimise_the_absolute_error_not_the_squared_one():
    # Truth 0; A is off by 10 on three rows, B on the fourth. Blend w A + (1 - w) B:
    # mae = (30 w + 10 (1 - w)) / 4, smallest at w = 0 (2.5); mse = (300 w^2 + 100 (1 - w)^2)
    # / 4, smallest at w = 1/4. The linear program must find the vertex.
    y = np.zeros(4)
    a, b = col(10, 10, 10, 0), col(0, 0, 0, 10)
    w = blending.fit_weights([a, b], y, metric="mae")
    np.testing.assert_allclose(w, [0.0, 1.0], atol=1e-9)
    assert get_metric("mae")(y, blending.soft_vote([a, b], w)) == pytest.approx(2.5)
    np.testing.assert_allclose(blending.fit_weights([a, b], y, metric="rmse"), [0.25, 0.75],
                               atol=1e-4)


def test_regression_cross_validated_blend_uses_weights_fitted_elsewhere():
    # Fold 0: A exact, B off by 4; fold 1 the reverse: held-out weights pick the wrong one.
    y, folds = np.full(4, 1.0), np.array([0, 0, 1, 1])
    a, b = col(1, 1, 5, 5), col(5, 5, 1, 1)
    blend, fold_weights = blending.cross_validated_blend([a, b], y, folds, metric="rmse")
    np.testing.assert_allclose(fold_weights[0], [0, 1], atol=1e-6)
    np.testing.assert_allclose(fold_weights[1], [1, 0], atol=1e-6)
    np.testing.assert_allclose(blend, col(5, 5, 5, 5), atol=1e-5)
    np.testing.assert_allclose(blending.fit_weights([a, b], y, metric="rmse"), [0.5, 0.5],
                               atol=1e-6)  # in sample: 3 everywhere, error 2 < 4


def test_rmsle_weights_refuse_negative_targets():
    with pytest.raises(DataError, match=re.escape("negative targets (e.g. [-1.0])")):
        blending.fit_weights([col(1, 2), col(2, 3)], np.array([-1.0, 2.0]), metric="rmsle")


# --- hill climbing -------------------------------------------------------------------------


def _truth_and_noise(seed: int = 0, n: int = 400):
    """Member 1 is the truth plus small noise; members 0, 2, 3 are noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    good = np.clip(np.where(labels == 1, 0.8, 0.2) + rng.normal(0, 0.05, n), 0.01, 0.99)
    members = [rng.uniform(0.01, 0.99, n) for _ in range(3)]
    members.insert(1, good)
    return [np.stack([1 - p, p], axis=1) for p in members], labels


def test_hill_climbing_selects_the_member_that_is_the_truth():
    from kit.ensembles.blend import fit_hill

    members, labels = _truth_and_noise()
    for metric in ("accuracy", "logloss", "auc"):
        w = fit_hill(members, labels, metric=metric)
        assert w.argmax() == 1 and w[1] > 0.8, (metric, w)
        assert w.sum() == pytest.approx(1.0) and (w >= 0).all()


def test_hill_climbing_with_negative_weights_may_go_below_zero_and_sums_to_one():
    from kit.ensembles.blend import fit_hill
    from kit.ensembles.hill_climbing import HillSettings

    rng = np.random.default_rng(1)
    truth = rng.normal(size=500) + 5
    shared = rng.normal(size=500)
    a = truth + shared  # both members carry one error; a - 0.5 * b cancels part of it
    b = shared * 2 + truth
    members = [a[:, None], b[:, None]]
    w = fit_hill(members, truth, metric="rmse", settings=HillSettings(negative_weights=True))
    assert w.sum() == pytest.approx(1.0) and w.min() < 0, w
    plain = fit_hill(members, truth, metric="rmse")
    assert (plain >= 0).all()
    rmse = lambda w: np.sqrt(np.mean((np.tensordot(w, np.stack(members), 1)[:, 0] - truth) ** 2))  # noqa: E731
    assert rmse(w) < rmse(plain)


def test_hill_blend_reports_the_cross_validated_metric_and_its_objective():
    from kit.ensembles.blend import Stack, blend

    members, labels = _truth_and_noise(seed=2)
    folds = np.arange(len(labels)) % 4
    stack = Stack(problem="classification", classes=["0", "1"], oof_ids=np.arange(len(labels)),
                  folds=folds, targets=labels, labels=labels, oof=np.stack(members),
                  test_ids=np.arange(10), test=np.stack([m[:10] for m in members]))
    result = blend(stack, "hill", get_metric("accuracy"))
    assert result.objective == "logloss" and result.objective_cv is not None
    assert result.score_cv == pytest.approx(get_metric("accuracy")(labels, result.oof))
    # each fold's weights were selected on the other folds: all pick the true member
    assert all(w.argmax() == 1 for w in result.fold_weights.values())


def test_bagged_hill_climbing_averages_climbs_over_member_subsets_reproducibly():
    from kit.ensembles.blend import fit_hill
    from kit.ensembles.hill_climbing import HillSettings

    members, labels = _truth_and_noise(seed=6)
    members = members + _truth_and_noise(seed=7)[0][2:]  # six members, one the truth
    bagged = HillSettings(bags=20, bag_fraction=0.5, seed=3)
    w = fit_hill(members, labels, metric="logloss", settings=bagged)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w.argmax() == 1 and 0.2 < w[1] < 1.0  # the bags without the truth weigh others
    np.testing.assert_array_equal(w, fit_hill(members, labels, metric="logloss", settings=bagged))
    other_seed = fit_hill(members, labels, metric="logloss",
                          settings=HillSettings(bags=20, bag_fraction=0.5, seed=4))
    assert not np.array_equal(w, other_seed)
    # a bag as large as the library is one climb over all
    whole = fit_hill(members, labels, metric="logloss", settings=HillSettings(bags=20,
                                                                              bag_fraction=1.0))
    np.testing.assert_array_equal(whole, fit_hill(members, labels, metric="logloss"))


# --- stacking ------------------------------------------------------------------------------


def test_stacking_recovers_a_known_linear_blend_and_never_uses_its_own_fold():
    from kit.ensembles.stacking import stack

    rng = np.random.default_rng(3)
    n = 600
    a, b, c = rng.normal(size=(3, n))
    truth = 0.7 * a + 0.3 * b + rng.normal(0, 0.01, n)  # c is noise
    members = np.stack([a, b, c])[:, :, None]
    folds = np.arange(n) % 5
    oof, test, coefficients = stack(members, members[:, :50], truth, folds,
                                    problem="regression", metric="rmse", strength=1e-6)
    np.testing.assert_allclose(coefficients["coef"][0], [0.7, 0.3, 0.0], atol=0.01)
    assert np.sqrt(np.mean((oof[:, 0] - truth) ** 2)) < 0.02
    # a level-2 OOF row comes from the model fitted without its fold: poison one fold's
    # targets and only the other folds' predictions change
    poisoned = truth.copy()
    poisoned[folds == 0] += 100.0
    again, _, _ = stack(members, members[:, :50], poisoned, folds, problem="regression",
                        metric="rmse", strength=1e-6)
    np.testing.assert_allclose(again[folds == 0], oof[folds == 0], atol=1e-6)
    assert not np.allclose(again[folds != 0], oof[folds != 0])


def test_regression_stacking_shrinks_toward_the_plain_average():
    from kit.ensembles.stacking import stack

    rng = np.random.default_rng(8)
    n = 300
    truth = rng.normal(size=n)
    members = np.stack([truth + rng.normal(0, s, n) for s in (0.3, 0.5, 0.8)])[:, :, None]
    folds = np.arange(n) % 5
    _, _, strong = stack(members, members, truth, folds, problem="regression", metric="rmse",
                         strength=1e9)
    np.testing.assert_allclose(strong["coef"][0], [1 / 3] * 3, atol=1e-4)  # equal, not zero
    _, _, chosen = stack(members, members, truth, folds, problem="regression", metric="rmse")
    w = np.asarray(chosen["coef"][0])
    assert w.sum() == pytest.approx(1.0) and w[0] > w[1] > w[2]  # the least noisy weighs most
    assert len(chosen["penalty"]) == 5  # RidgeCV picked one per fold


def test_stacking_under_rmsle_fits_in_log_space():
    from kit.ensembles.stacking import stack

    rng = np.random.default_rng(5)
    price = np.exp(rng.normal(12, 0.4, 400))
    good, bad = price * np.exp(rng.normal(0, 0.05, 400)), price * np.exp(rng.normal(0, 0.5, 400))
    members = np.stack([good, bad])[:, :, None]
    oof, _, coefficients = stack(members, members, price, np.arange(400) % 4,
                                 problem="regression", metric="rmsle")
    assert coefficients["coef"][0][0] > 0.8  # the log of the good member carries the fit
    assert get_metric("rmsle")(price, oof) < 0.06


def test_stacking_classification_gives_probabilities():
    from kit.ensembles.blend import Stack, blend

    members, labels = _truth_and_noise(seed=4)
    folds = np.arange(len(labels)) % 4
    stack_ = Stack(problem="classification", classes=["0", "1"],
                   oof_ids=np.arange(len(labels)), folds=folds, targets=labels, labels=labels,
                   oof=np.stack(members), test_ids=np.arange(10),
                   test=np.stack([m[:10] for m in members]))
    result = blend(stack_, "stack", get_metric("logloss"))
    np.testing.assert_allclose(result.oof.sum(axis=1), 1.0)
    assert result.weights.argmax() == 1  # the truth's logit carries the largest coefficient
    assert result.score_cv < min(get_metric("logloss")(labels, m) for m in members)


# --- metrics of issue 30 in blends -----------------------------------------------------------


def test_hill_climbs_on_ranked_and_own_metrics_and_on_log_loss_for_labels_metrics():
    from kit.ensembles.blend import hill_objective
    from kit.metrics.registry import Metric

    assert hill_objective("map@3").name == "map@3"  # MAP@k moves with three guesses a row
    for name in ("accuracy", "qwk", "mcc", "balanced_accuracy"):
        assert hill_objective(name).name == "logloss"
    own = Metric("my_top3", lambda y, p: 0.0, "max", "ranked", 3, source="metric.py")
    assert hill_objective(own) is own


def test_mape_weights_minimise_the_relative_error():
    # y = (1, 100): member a is exact on row 0 and 50 % off on row 1, member b the reverse.
    # MAPE of w a + (1 - w) b: |1 - (w + 2 (1 - w))| / 1 + |100 - (150 w + 100 (1 - w))| / 100
    #   = (1 - w) + w / 2, smallest at w = 1 (mae would weigh row 1's 50 units instead)
    y = np.array([1.0, 100.0])
    a, b = np.array([[1.0], [150.0]]), np.array([[2.0], [100.0]])
    np.testing.assert_allclose(blending.fit_weights([a, b], y, metric="mape"), [1.0, 0.0],
                               atol=1e-6)
    np.testing.assert_allclose(blending.fit_weights([a, b], y, metric="mae"), [0.0, 1.0],
                               atol=1e-6)


def test_a_regression_metric_without_a_weight_loss_points_to_hill():
    y = np.array([1.0, 2.0])
    with pytest.raises(ConfigError, match=r"'smape'.*use --method hill"):
        blending.fit_weights([y[:, None], y[:, None] + 1], y, metric="smape")
