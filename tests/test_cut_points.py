"""QWK with fitted cut points (issue 30, item 3; kit/metrics/cut_points.py): the cuts are fitted inside
the CV when a score is reported, saved with the run (cut_points.json), cut the submission's
labels, reproduced by predict.py and refitted on an ensemble's blend. The end-to-end runs use
a small synthetic ordinal competition in a tmp competitions root (KIT_COMPETITIONS_ROOT)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from kit.cli import run_script
from kit.errors import CheckpointError
from kit.metrics import cut_points as cp
from kit.metrics.registry import get_metric
from kit.predict import predict_main
from kit.run_folder import read_cut_points

ROOT = Path(__file__).resolve().parents[1]
SLUG = "ordinal-demo"
QWK = get_metric("qwk")
CONFIG = '''
[competition]
task = "tabular"
problem = "classification"
metric = "qwk"
kaggle = false
description = "Synthetic ordinal ratings 1-5 (QWK)"

[data]
train = "train.csv"
test = "test.csv"
sample_submission = "sample_submission.csv"
id = "id"
target = "rating"

[features]
name = "raw"
numeric = ["x1", "x2", "x3", "x4", "x5"]
categorical = ["shop"]

[model]
name = "lgbm"

[model.params.lgbm]
rounds = 200
early_stopping_rounds = 20
learning_rate = 0.1
num_leaves = 7

[cv]
n_splits = 5
seed = 0
strategy = "stratified"
'''


def make_data(data_dir: Path, seed: int = 0, n_train: int = 1500, n_test: int = 300) -> None:
    """Ratings 1-5 cut from a noisy latent score, 2-4 common and 1, 5 rarer (review-like)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = rng.normal(size=(n, 5))
    shop = rng.choice(list("abcd"), n)
    z = (x[:, 0] + 0.7 * x[:, 1] - 0.5 * x[:, 2] + 0.4 * np.sin(2 * x[:, 3])
         + pd.Series(shop).map({"a": 0.0, "b": 0.4, "c": -0.4, "d": 0.8}).to_numpy()
         + rng.normal(scale=0.8, size=n))
    frame = pd.DataFrame({"id": np.arange(n), "shop": shop,
                          "rating": 1 + np.digitize(z, [-1.6, -0.5, 0.6, 1.7])})
    for j in range(5):
        frame[f"x{j + 1}"] = x[:, j]
    data_dir.mkdir(parents=True, exist_ok=True)
    frame.iloc[:n_train].to_csv(data_dir / "train.csv", index=False)
    test = frame.iloc[n_train:].drop(columns="rating")
    test.to_csv(data_dir / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "rating": 3}).to_csv(data_dir / "sample_submission.csv",
                                                        index=False)


def script(name: str, world: Path, *args) -> dict:
    summary = world / f"{name}-summary.json"
    summary.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args, "--summary-json", str(summary)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "KIT_COMPETITIONS_ROOT": str(world / "comps")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(summary.read_text())


def train(world: Path, *extra) -> Path:
    summary = script("train.py", world, "--comp", SLUG, "--data", str(world / "data"),
                     "--runs", str(world / "runs"), "--submissions", str(world / "subs"), *extra)
    return Path(summary["run_dir"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two finished qwk runs (lgbm, and gbdt) on the ordinal table."""
    root = tmp_path_factory.mktemp("qwk")
    (root / "comps" / SLUG).mkdir(parents=True)
    (root / "comps" / SLUG / "config.toml").write_text(CONFIG)
    make_data(root / "data")
    runs = [train(root), train(root, "--set", "model.name=gbdt",
                              "--set", "model.params.gbdt.max_iter=60")]
    return root, runs


def run_oof(run: Path):
    """(probabilities, class indices, folds, classes) from a run's oof.parquet."""
    scores = json.loads((run / "scores.json").read_text())
    classes = scores["classes"]
    oof = pd.read_parquet(run / "oof.parquet")
    labels = pd.Index(classes).get_indexer(oof["target"].astype(str))
    return oof[[f"p_{c}" for c in classes]].to_numpy(), labels, oof["fold"].to_numpy(), classes


def cut_labels(proba: np.ndarray, cuts, classes) -> np.ndarray:
    return np.asarray(classes)[cp.cut(cp.expected_index(proba), cuts)].astype(int)


# --- the fitting and the in-CV rule, on fixed arrays ---------------------------------------


def ordinal_proba(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Miscalibrated, too-flat class probabilities around a latent score, imbalanced labels."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    labels = np.clip(np.round(1.2 * z + 2 + 0.7 * rng.normal(size=n)), 0, 4).astype(int)
    logits = -((np.arange(5)[None] - 2 - 0.8 * z[:, None]) ** 2) / 1.5
    proba = np.exp(logits)
    return proba / proba.sum(1, keepdims=True), labels


def test_quadratic_kappa_is_sklearns():
    rng = np.random.default_rng(0)
    for n_classes in (2, 3, 6):
        labels, pred = rng.integers(0, n_classes, 500), rng.integers(0, n_classes, 500)
        want = cohen_kappa_score(labels, pred, weights="quadratic", labels=range(n_classes))
        assert cp.quadratic_kappa(labels, pred, n_classes) == pytest.approx(want, abs=1e-12)


def test_cuts_start_at_rounding_and_cut_the_expected_index():
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5]])  # E = 0.1, 1.3, 1.5
    assert cp.default_cuts(3).tolist() == [0.5, 1.5]
    assert cp.cut(cp.expected_index(proba), cp.default_cuts(3)).tolist() == [0, 1, 2]
    assert cp.apply(proba, [0.05, 1.4]).argmax(1).tolist() == [1, 1, 2]


def noise(seed: int, n: int = 100):
    """OOF probabilities unrelated to the labels, 5 folds."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(5), n), rng.integers(0, 5, n), np.arange(n) % 5


def test_the_reported_score_uses_cuts_fitted_on_the_other_folds_only():
    """Each fold's rows are cut with cuts fitted on the other folds; on pure noise the leak
    (cuts fitted on all OOF rows, then scored on them) makes signal the in-CV score does not."""
    proba, labels, folds = noise(seed=1)
    scored = cp.score_cv(proba, labels, folds, QWK)
    by_hand = np.empty(len(labels), int)
    for f in range(5):
        cuts = cp.fit(proba[folds != f], labels[folds != f], QWK)
        by_hand[folds == f] = cp.cut(cp.expected_index(proba[folds == f]), cuts)
    assert scored.oof_labels.tolist() == by_hand.tolist()
    assert scored.oof == pytest.approx(QWK(labels, cp.one_hot(by_hand, 5)), abs=1e-12)
    leaked, in_cv = [], []
    for seed in range(8):
        scored = cp.score_cv(*noise(seed), QWK)
        proba, labels, _ = noise(seed)
        assert scored.in_sample == QWK(labels, cp.apply(proba, cp.fit(proba, labels, QWK)))
        leaked.append(scored.in_sample)
        in_cv.append(scored.oof)
    assert np.mean(leaked) > 0.12 and abs(np.mean(in_cv)) < 0.06  # measured: 0.166, 0.027


def test_fitted_cuts_beat_argmax_and_rounding_in_cv():
    proba, labels = ordinal_proba(2000, seed=0)
    scored = cp.score_cv(proba, labels, np.arange(2000) % 5, QWK)
    assert scored.oof > QWK(labels, proba) + 0.05  # argmax
    assert scored.oof > QWK(labels, cp.apply(proba, cp.default_cuts(5))) + 0.05  # rounding
    assert (np.diff(scored.cuts) > 0).all()


def test_fold_fits_of_a_repeat_only_see_their_repeat():
    proba, labels = ordinal_proba(400, seed=1)
    parts = [(proba[i::4], labels[i::4], i // 2) for i in range(4)]  # 2 repeats x 2 folds
    scores = cp.fit_scores(parts, QWK)
    for i, (p, y, _) in enumerate(parts):
        other = parts[i ^ 1]  # the other fold of the same repeat
        cuts = cp.fit(other[0], other[1], QWK)
        assert scores[i] == pytest.approx(QWK(y, cp.apply(p, cuts)), abs=1e-12)


def test_a_time_split_fits_each_folds_cuts_on_earlier_folds_only():
    proba, labels = ordinal_proba(600, seed=4)
    folds = np.repeat(np.arange(3), 200)  # fold ids in time order
    got = cp.in_cv_labels(proba, labels, folds, QWK, forward=True)
    first = cp.cut(cp.expected_index(proba[:200]), cp.default_cuts(5))  # nothing earlier
    late = cp.cut(cp.expected_index(proba[400:]), cp.fit(proba[:400], labels[:400], QWK))
    assert got[:200].tolist() == first.tolist() and got[400:].tolist() == late.tolist()


def test_a_binary_mcc_or_f1_threshold_is_fitted_the_same_way():
    rng = np.random.default_rng(2)
    n = 3000
    labels = (rng.random(n) < 0.15).astype(int)  # a rare positive class
    p1 = np.clip(0.12 + 0.25 * labels + 0.12 * rng.normal(size=n), 0, 1)  # under-confident
    proba = np.column_stack([1 - p1, p1])
    for name in ("mcc", "f1_macro"):
        metric = get_metric(name)
        assert cp.applies(metric, [0, 1]) and not cp.applies(metric, [0, 1, 2])
        scored = cp.score_cv(proba, labels, np.arange(n) % 5, metric)
        assert scored.cuts.shape == (1,) and scored.cuts[0] < 0.5
        assert scored.oof > metric(labels, proba) + 0.1
    assert not cp.applies(get_metric("accuracy"), [0, 1]) and cp.applies(QWK, [1, 2, 3])


def test_weighted_quadratic_kappa_is_sklearns():
    rng = np.random.default_rng(5)
    labels, pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    weight = rng.uniform(0, 3, 300)
    want = cohen_kappa_score(labels, pred, weights="quadratic", sample_weight=weight)
    assert cp.quadratic_kappa(labels, pred, 4, weight) == pytest.approx(want, abs=1e-12)


def test_repeated_quantiles_are_numpys_on_the_repeated_rows():
    rng = np.random.default_rng(6)
    q = np.linspace(0, 1, cp.GRID)
    for n in (1, 2, 7, 50):
        values = np.round(rng.normal(size=n), 1)  # ties too
        copies = rng.integers(1, 5, n)
        np.testing.assert_allclose(cp.repeated_quantiles(values, copies.astype(float), q),
                                   np.quantile(np.repeat(values, copies), q), atol=1e-12)


@pytest.mark.parametrize("name", ["qwk", "mcc"])
def test_a_row_of_integer_weight_w_fits_as_w_copies_of_it(name):
    metric = get_metric(name)
    proba, labels = ordinal_proba(600, seed=7)
    if name == "mcc":  # two classes: one threshold on p_1
        labels = (labels >= 2).astype(int)
        proba = np.column_stack([proba[:, :2].sum(1), proba[:, 2:].sum(1)])
    weight = np.random.default_rng(8).integers(0, 4, 600)  # 0: the row does not count
    folds = np.arange(600) % 3
    copies = np.repeat(np.arange(600), weight)
    weighted = cp.score_cv(proba, labels, folds, metric, weight=weight.astype(float))
    repeated = cp.score_cv(proba[copies], labels[copies], folds[copies], metric)
    np.testing.assert_allclose(weighted.cuts, repeated.cuts, atol=1e-12)
    assert weighted.oof == pytest.approx(repeated.oof, abs=1e-12)
    assert weighted.fold_scores == pytest.approx(repeated.fold_scores, abs=1e-12)
    assert weighted.in_sample == pytest.approx(repeated.in_sample, abs=1e-12)
    assert (weighted.oof_labels[copies] == repeated.oof_labels).all()
    plain = cp.score_cv(proba, labels, folds, metric)  # the weights move the cuts
    assert np.abs(plain.cuts - weighted.cuts).max() > 1e-3


def test_weighted_fold_fits_see_each_parts_weights():
    proba, labels = ordinal_proba(400, seed=9)
    weight = np.random.default_rng(10).uniform(0.1, 3, 400)
    parts = [(proba[i::2], labels[i::2], 0) for i in range(2)]
    scores = cp.fit_scores(parts, QWK, weights=[weight[0::2], weight[1::2]])
    for i, (p, y, _) in enumerate(parts):
        cuts = cp.fit(proba[1 - i::2], labels[1 - i::2], QWK, weight[1 - i::2])
        assert scores[i] == pytest.approx(QWK(y, cp.apply(p, cuts), weight[i::2]), abs=1e-12)


def test_small_weights_count_as_one_copy_at_the_least():
    proba, labels = ordinal_proba(600, seed=11)
    weight = np.random.default_rng(12).integers(1, 4, 600).astype(float)
    # the same weights on another scale: the same grid, so the same cuts
    np.testing.assert_allclose(cp.fit(proba, labels, QWK, weight / 1000),
                               cp.fit(proba, labels, QWK, weight), atol=1e-12)


# --- end to end: train, predict, ensemble ---------------------------------------------------


def test_a_qwk_run_reports_in_cv_cut_scores_better_than_argmax(world):
    _, (run, _) = world
    scores = json.loads((run / "scores.json").read_text())
    proba, labels, folds, classes = run_oof(run)
    assert list(pd.read_parquet(run / "oof.parquet").columns[3:]) == [f"p_{c}" for c in classes]
    in_cv = cp.score_cv(proba, labels, folds, QWK)
    assert scores["oof"] == pytest.approx(in_cv.oof, abs=1e-12)
    assert scores["fold_scores"] == pytest.approx(in_cv.fold_scores, abs=1e-12)  # one repeat: the same
    assert scores["oof_argmax"] == pytest.approx(QWK(labels, proba), abs=1e-12)
    leaked = QWK(labels, cp.apply(proba, cp.fit(proba, labels, QWK)))
    assert scores["oof"] < leaked  # not the score of cuts fitted on the rows they score
    assert scores["oof"] > scores["oof_argmax"] + 0.01  # the cuts help, honestly measured


def test_the_submission_holds_labels_cut_with_the_saved_cut_points(world):
    _, (run, _) = world
    proba, labels, _, classes = run_oof(run)
    saved = json.loads((run / "cut_points.json").read_text())
    cuts = read_cut_points(run, classes)
    assert saved["metric"] == "qwk" and saved["classes"] == classes
    np.testing.assert_array_equal(cuts, cp.fit(proba, labels, QWK))  # fitted on all OOF rows
    test = pd.read_parquet(run / "test_pred.parquet")
    submission = pd.read_csv(run / "submission.csv")
    assert (submission["id"].to_numpy() == test["id"].to_numpy()).all()
    test_proba = test[[f"p_{c}" for c in classes]].to_numpy()
    want = cut_labels(test_proba, cuts, classes)
    assert submission["rating"].tolist() == want.tolist()
    argmax = np.asarray(classes)[test_proba.argmax(1)].astype(int)
    assert (want != argmax).sum() >= 10  # the cuts, not argmax, decided these rows


def test_predict_reproduces_the_submission_bit_for_bit(world):
    root, (run, _) = world
    out = root / "predicted"
    summary = script("predict.py", root, "--run", str(run), "--data", str(root / "data"),
                     "--out", str(out))
    assert Path(summary["submission"]).read_bytes() == (run / "submission.csv").read_bytes()
    assert summary["max_abs_diff_vs_run"] == 0.0
    # the labels come from the file's cuts (other cuts in the file: other labels), not a refit
    copy = root / "edited" / run.name
    shutil.copytree(run, copy)
    saved = json.loads((copy / "cut_points.json").read_text())
    (copy / "cut_points.json").write_text(json.dumps({**saved, "cut_points": [0.5, 1.5, 2.5, 3.5]}))
    summary = script("predict.py", root, "--run", str(copy), "--data", str(root / "data"))
    test = pd.read_parquet(Path(summary["test_pred"]))
    classes = saved["classes"]
    want = cut_labels(test[[f"p_{c}" for c in classes]].to_numpy(), cp.default_cuts(5), classes)
    assert pd.read_csv(summary["submission"])["rating"].tolist() == want.tolist()


def test_predict_refuses_a_broken_cut_points_file(world, tmp_path, capsys, monkeypatch):
    root, (run, _) = world
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(root / "comps"))
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    (copy / "cut_points.json").write_text('{"cut_points": [2.5, 1.5], "classes": ["1"]}')
    with pytest.raises(CheckpointError, match="cut_points.json.*retrain the run"):
        read_cut_points(copy, ["1", "2", "3", "4", "5"])
    assert run_script(predict_main, ["--run", str(copy), "--data", str(root / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # one line, after any warnings
    assert err.startswith("error: ") and "cut_points.json" in err and "retrain" in err
    assert not (copy / "predict" / "submission.csv").exists()


def test_an_ensemble_of_two_qwk_runs_refits_the_cut_points_on_the_blend(world):
    root, runs = world
    summary = script("ensemble.py", root, "--comp", SLUG, *map(str, runs), "--method", "soft",
                     "--data", str(root / "data"), "--runs", str(root / "runs"),
                     "--submissions", str(root / "subs"))
    blend = Path(summary["run_dir"])
    proba, labels, folds, classes = run_oof(blend)
    cuts = read_cut_points(blend, classes)
    np.testing.assert_allclose(cuts, cp.fit(proba, labels, QWK), atol=1e-9)  # the blend's own
    for run in runs:
        assert not np.array_equal(cuts, read_cut_points(run, classes))
    scores = json.loads((blend / "scores.json").read_text())
    assert scores["oof"] == pytest.approx(cp.score_cv(proba, labels, folds, QWK).oof, abs=1e-12)
    assert summary["oof_score"] == scores["oof"] and scores["oof_argmax"] < scores["oof"]
    test = pd.read_parquet(blend / "test_pred.parquet")[[f"p_{c}" for c in classes]].to_numpy()
    submission = pd.read_csv(summary["submission"])
    assert submission["rating"].tolist() == cut_labels(test, cuts, classes).tolist()
