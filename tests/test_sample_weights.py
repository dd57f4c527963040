"""Per-row weights (issue 30, item 6): every built-in metric scores a weighted row as that
many copies of it, a competition's metric.py gets the weights when its score() asks for
them (and is refused them otherwise), the tree libraries, scikit-learn kinds (voting's
members too) and networks train on them, cut points are fitted on them, out-of-core runs
stream them, and ensembles weigh their rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_in_process, write_config

from kit.config import load_resolved
from kit.errors import ConfigError
from kit.metrics.competition import competition_metric
from kit.metrics.registry import METRICS, get_metric
from kit.models import build_model
from kit.models.tabular import fit_sklearn

RNG = np.random.default_rng(0)
N = 60


def scored(name: str) -> tuple[np.ndarray, np.ndarray]:
    metric = get_metric(name)
    if metric.problem == "regression":
        y = RNG.uniform(1, 10, N)
        return y, (y + RNG.normal(0, 1, N)).clip(0.1)[:, None]
    y = RNG.integers(0, 3, N)
    proba = RNG.dirichlet(np.ones(3), N)
    return y, proba


@pytest.mark.parametrize("name", sorted([*METRICS, "map@3"]))
def test_an_integer_weight_counts_a_row_that_many_times(name):
    metric = get_metric(name)
    labels, pred = scored(name)
    weight = RNG.integers(1, 4, N)
    copies = np.repeat(np.arange(N), weight)
    assert metric(labels, pred, weight) == pytest.approx(metric(labels[copies], pred[copies]))
    assert metric(labels, pred, np.ones(N)) == pytest.approx(metric(labels, pred))
    assert metric(labels, pred, weight) != pytest.approx(metric(labels, pred))  # it counts


@pytest.mark.parametrize("problem, classes, loss", [
    ("classification", 2, "auto"), ("classification", 3, "auto"), ("regression", 0, "auto"),
    ("regression", 0, "huber")])
def test_a_networks_loss_counts_an_integer_weighted_row_that_many_times(problem, classes,
                                                                         loss):
    import torch

    from kit.objective import Objective

    objective = Objective(problem, classes, loss, label_smoothing=0.1 if classes else 0.0)
    outputs = torch.tensor(RNG.normal(size=(N, max(classes, 2) if classes > 2 else 1)))
    y = torch.tensor(RNG.integers(0, classes, N) if classes else RNG.normal(size=N))
    weight = RNG.integers(1, 4, N)
    copies = torch.tensor(np.repeat(np.arange(N), weight))
    weighted = objective.loss(outputs, y, torch.tensor(weight, dtype=torch.float32))
    assert float(weighted) == pytest.approx(float(objective.loss(outputs[copies], y[copies])),
                                            rel=1e-5)
    members = outputs[:, None].repeat(1, 3, 1)  # TabM's k members: each row once per member
    assert float(objective.loss(members, y, torch.tensor(weight, dtype=torch.float32))) == \
        pytest.approx(float(weighted), rel=1e-5)


def test_a_weighted_network_run_stops_early_on_the_weighted_metric(tmp_path):
    train = weighted_world(tmp_path, model="mlp")
    proc, summary = train_weighted(tmp_path, "--set", "train.epochs=4",
                                   "--set", "train.monitor=metric")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = Path(summary["run_dir"])
    oof = pd.read_parquet(run / "oof.parquet").merge(train[["id", "label", "w"]], on="id")
    metric = get_metric("accuracy")
    for k, score in enumerate(json.loads((run / "scores.json").read_text())["fold_scores"]):
        part = oof[oof["fold"] == k]
        best = json.loads((run / f"fold{k}" / "done.json").read_text())["best_epoch"]
        history = pd.read_csv(run / f"fold{k}" / "history.csv").set_index("epoch")
        # the epoch the trainer kept scored the fold's rows weighted, as the run scores them
        assert history.loc[best, "valid_metric"] == pytest.approx(score)
        assert score == pytest.approx(metric(part["label"].to_numpy(),
                                             part[["p_0", "p_1"]].to_numpy(), part["w"]))


def write_metric(folder, signature: str) -> None:
    folder.mkdir(parents=True)
    (folder / "metric.py").write_text(
        'import numpy as np\nNAME = "wacc"\nMODE = "max"\nSCORES = "labels"\n\n'
        f"def score({signature}):\n"
        "    return float(np.average(labels == pred, weights=weight))\n"
        if "weight" in signature else
        'import numpy as np\nNAME = "acc"\nMODE = "max"\nSCORES = "labels"\n\n'
        f"def score({signature}):\n    return float(np.mean(labels == pred))\n")


def test_a_metric_file_gets_the_weights_when_its_score_takes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path))
    write_metric(tmp_path / "weighted", "labels, pred, weight=None")
    write_metric(tmp_path / "plain", "labels, pred")
    labels, proba = np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    weighted, plain = competition_metric("weighted"), competition_metric("plain")
    assert weighted(labels, proba) == pytest.approx(2 / 3)
    assert weighted(labels, proba, np.array([1.0, 0.0, 1.0])) == pytest.approx(1.0)
    assert plain(labels, proba) == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match=r"takes no weights.*weight=None"):
        plain(labels, proba, np.ones(3))


def noisy_table(seed: int):
    """A clean signal, and a quarter of the rows with flipped labels: weighted ~0, the
    models must learn the clean rule; unweighted, they learn the noise too."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(size=800)})
    y = (x["a"] + 0.5 * x["b"] > 0).astype(int).to_numpy()
    bad = rng.random(800) < 0.35
    y_seen = np.where(bad, 1 - y, y)
    weight = np.where(bad, 1e-3, 1.0)
    return x, y, y_seen, weight


@pytest.mark.parametrize("kind", ["lgbm", "xgb", "catboost"])
def test_each_booster_trains_on_the_weights(kind):
    x, y, y_seen, weight = noisy_table(1)
    fit, valid = slice(0, 600), slice(600, 800)

    def accuracy(w, vw):
        model = build_model(kind, task="tabular", problem="classification", n_outputs=1, seed=0,
                            num_threads=1, rounds=200, early_stopping_rounds=20)
        model.fit(x[fit], y_seen[fit], x[valid], y_seen[valid], weight=w, valid_weight=vw)
        return ((model.predict(x[valid])[:, 1] > 0.5) == y[valid]).mean()

    assert accuracy(weight[fit], weight[valid]) > accuracy(None, None) + 0.03


@pytest.mark.parametrize("kind", ["linear", "gbdt", "rf", "extratrees"])
def test_each_scikit_learn_kind_trains_on_the_weights(kind):
    x, y, y_seen, weight = noisy_table(2)
    args = {"problem": "classification", "seed": 0}
    if kind in ("linear", "gbdt"):
        args.update(n_numeric=2, cardinalities=[])
    else:  # leaves of one row predict their row whatever its weight: larger leaves here
        args.update(min_samples_leaf=20)
    weighted = fit_sklearn(build_model(kind, task="tabular", **args), x.to_numpy()[:600],
                           y_seen[:600], weight[:600])
    plain = fit_sklearn(build_model(kind, task="tabular", **args), x.to_numpy()[:600],
                        y_seen[:600])

    def acc(model):
        return (model.predict(x.to_numpy()[600:]) == y[600:]).mean()

    assert acc(weighted) > acc(plain) + 0.02


def test_voting_gives_the_weights_to_every_member():
    x, y, y_seen, weight = noisy_table(2)
    x = x.to_numpy()
    args = {"task": "tabular", "n_numeric": 2, "cardinalities": [], "problem": "classification",
            "seed": 0}
    weighted = fit_sklearn(build_model("voting", member_params={}, **args), x[:600],
                           y_seen[:600], weight[:600])
    for name, member in weighted.named_estimators_.items():  # as if fitted alone, weighted
        alone = fit_sklearn(build_model(name, **args), x[:600], y_seen[:600], weight[:600])
        np.testing.assert_allclose(member.predict_proba(x[600:]), alone.predict_proba(x[600:]))
    plain = fit_sklearn(build_model("voting", member_params={}, **args), x[:600], y_seen[:600])

    def acc(model):
        return (model.predict(x[600:]) == y[600:]).mean()

    assert acc(weighted) > acc(plain) + 0.02


# --- data.weight through a run ------------------------------------------------------------

def weighted_world(tmp_path, metric="accuracy", model="lgbm", n=400):
    rng = np.random.default_rng(0)
    x = rng.normal(size=n + 100)
    frame = pd.DataFrame({"id": np.arange(n + 100), "x": x, "z": rng.normal(size=n + 100)})
    train, test = frame.iloc[:n].copy(), frame.iloc[n:].copy()
    train["label"] = (train["x"] + rng.normal(0, 0.7, n) > 0).astype(int)
    train["w"] = rng.choice([0.5, 1.0, 3.0], n)
    test["w"] = 1.0  # in both files, so "auto" would take it were it not data.weight
    data = tmp_path / "data"
    data.mkdir()
    train.to_csv(data / "train.csv", index=False)
    test.to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "label": 0}).to_csv(data / "sample_submission.csv",
                                                        index=False)
    write_config(tmp_path / "comps" / "weighted", {
        "competition": {"metric": metric}, "data": {"weight": "w"}, "model": {"name": model},
        "cv": {"n_splits": 3}})
    return train


def train_weighted(tmp_path, *extra):
    """train.py in this process (conftest.run_in_process): (its outcome, summary or None)."""
    summary = tmp_path / "summary.json"
    summary.unlink(missing_ok=True)
    proc = run_in_process("train.py", "--comp", "weighted", "--data", tmp_path / "data",
                          "--runs", tmp_path / "runs", "--submissions", tmp_path / "subs",
                          "--summary-json", summary, *extra,
                          env={"KIT_COMPETITIONS_ROOT": str(tmp_path / "comps")})
    return proc, (json.loads(summary.read_text()) if summary.exists() else None)


def check_weighted_scores(run: Path, train: pd.DataFrame, metric: str = "accuracy") -> None:
    """scores.json says "weight", and its OOF and every fold score are the weighted metric
    of oof.parquet's rows (not the unweighted one)."""
    scores = json.loads((run / "scores.json").read_text())
    assert scores["weight"] == "w"
    oof = pd.read_parquet(run / "oof.parquet").merge(train[["id", "label", "w"]], on="id")
    score = get_metric(metric)
    proba = oof[["p_0", "p_1"]].to_numpy()
    assert scores["oof"] == pytest.approx(score(oof["label"].to_numpy(), proba, oof["w"]))
    assert scores["oof"] != pytest.approx(score(oof["label"].to_numpy(), proba))
    for k, fold_score in enumerate(scores["fold_scores"]):
        part = oof[oof["fold"] == k]
        assert fold_score == pytest.approx(score(part["label"].to_numpy(),
                                                 part[["p_0", "p_1"]].to_numpy(), part["w"]))


@pytest.mark.parametrize("model", ["lgbm", "linear"])
def test_a_weighted_run_scores_every_fold_and_the_oof_with_the_weights(tmp_path, model):
    train = weighted_world(tmp_path, model=model)
    proc, summary = train_weighted(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = Path(summary["run_dir"])
    check_weighted_scores(run, train)
    features = load_resolved(run / "config.toml").features
    assert "w" not in (*features.numeric, *features.categorical)  # never a feature


def test_a_weighted_voting_run_trains_and_scores_on_the_weights(tmp_path):
    from kit.tasks.tabular.task import _load_sklearn

    train = weighted_world(tmp_path, model="voting")
    runs = []
    for extra in ((), ("--set", "data.weight=")):
        proc, summary = train_weighted(tmp_path, *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(Path(summary["run_dir"]))
    check_weighted_scores(runs[0], train)
    cols = ["p_0", "p_1"]
    weighted, plain = (pd.read_parquet(run / "oof.parquet").sort_values("id") for run in runs)
    assert (weighted["fold"].to_numpy() == plain["fold"].to_numpy()).all()  # one split
    assert np.abs(weighted[cols].to_numpy() - plain[cols].to_numpy()).max() > 1e-3
    model = _load_sklearn(runs[0] / "fold0" / "model.skops")  # skops trusts what it saved
    assert type(model.named_estimators_["linear"]).__name__ == "WeightedPipeline"


def test_a_weighted_qwk_run_fits_its_cut_points_on_the_weighted_rows(tmp_path):
    from kit.metrics import cut_points as cp

    train = weighted_world(tmp_path, metric="qwk")
    proc, summary = train_weighted(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = Path(summary["run_dir"])
    scores = json.loads((run / "scores.json").read_text())
    oof = pd.read_parquet(run / "oof.parquet").merge(train[["id", "label", "w"]], on="id")
    proba, labels, folds = oof[["p_0", "p_1"]].to_numpy(), oof["label"].to_numpy(), oof["fold"]
    qwk = get_metric("qwk")
    weighted = cp.score_cv(proba, labels, folds.to_numpy(), qwk, weight=oof["w"].to_numpy())
    assert scores["weight"] == "w"
    assert scores["oof"] == pytest.approx(weighted.oof, abs=1e-12)
    assert scores["fold_scores"] == pytest.approx(weighted.fold_scores, abs=1e-12)
    saved = json.loads((run / "cut_points.json").read_text())["cut_points"]
    assert saved == pytest.approx(weighted.cuts.tolist(), abs=1e-12)
    plain = cp.score_cv(proba, labels, folds.to_numpy(), qwk)
    assert (plain.oof, plain.cuts.tolist()) != (weighted.oof, weighted.cuts.tolist())


def test_a_weighted_run_out_of_core_scores_with_the_weights(tmp_path):
    """The streamed path (kit/out_of_core/, tests/test_out_of_core.py) sums its scores
    batch by batch: weighted as the in-memory path's."""
    train = weighted_world(tmp_path)
    proc, summary = train_weighted(tmp_path, "--set", "data.out_of_core=on")
    assert proc.returncode == 0, proc.stderr[-2000:]
    check_weighted_scores(Path(summary["run_dir"]), train)


def ensemble(tmp_path, *args):
    summary = tmp_path / "ensemble.json"
    summary.unlink(missing_ok=True)
    proc = run_in_process("ensemble.py", "--comp", "weighted", *args,
                          "--runs", tmp_path / "runs", "--submissions", tmp_path / "subs",
                          "--data", tmp_path / "data", "--summary-json", summary,
                          env={"KIT_COMPETITIONS_ROOT": str(tmp_path / "comps")})
    return proc, (json.loads(summary.read_text()) if summary.exists() else None)


@pytest.mark.parametrize("method", ["weighted", "hill", "stack"])
def test_an_ensemble_of_weighted_runs_weighs_its_rows(tmp_path, method):
    train = weighted_world(tmp_path)
    runs = [train_weighted(tmp_path, *extra)[1]["run_dir"]
            for extra in ((), ("--set", "model.name=linear"))]
    proc, summary = ensemble(tmp_path, *runs, "--method", method)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = Path(summary["run_dir"])
    scores = json.loads((folder / "scores.json").read_text())
    assert scores["weight"] == "w"  # an ensemble of it blends weighted too
    oof = pd.read_parquet(folder / "oof.parquet").merge(train[["id", "label"]], on="id")
    assert (oof["weight"] == oof["id"].map(train.set_index("id")["w"])).all()
    metric, proba = get_metric("accuracy"), oof[["p_0", "p_1"]].to_numpy()
    assert scores["oof"] == pytest.approx(metric(oof["label"].to_numpy(), proba, oof["weight"]))
    for member, run in zip(summary["members"], runs):  # each member scored as its run was
        assert member["oof_score"] == pytest.approx(
            json.loads((Path(run) / "scores.json").read_text())["oof"])


def test_weights_move_the_fitted_blend_toward_the_heavy_rows():
    from kit.ensembles.blend import fit_hill, fit_weights

    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    right_first = np.array([[0.1, 0.9]] * 4 + [[0.4, 0.6]] * 4)  # sure on rows 0-3
    right_last = np.array([[0.4, 0.6]] * 4 + [[0.9, 0.1]] * 4)  # sure on rows 4-7
    heavy_first = np.array([10.0] * 4 + [0.1] * 4)
    for fit in (fit_weights, lambda m, y, weight: fit_hill(m, y, metric="logloss",
                                                           weight=weight)):
        w = fit([right_first, right_last], labels, weight=heavy_first)
        flipped = fit([right_first, right_last], labels, weight=heavy_first[::-1])
        assert w[0] > 0.5 > flipped[0]


def test_an_ensemble_of_weighted_and_unweighted_runs_is_refused(tmp_path):
    weighted_world(tmp_path)
    runs = [train_weighted(tmp_path, *extra)[1]["run_dir"]
            for extra in ((), ("--set", "data.weight="))]
    proc, _ = ensemble(tmp_path, *runs)
    assert proc.returncode == 2 and "other row weights" in proc.stderr, proc.stderr[-2000:]


def test_an_ensemble_of_weighted_qwk_runs_refits_its_cut_points_weighted(tmp_path):
    from kit.metrics import cut_points as cp

    train = weighted_world(tmp_path, metric="qwk")
    runs = [train_weighted(tmp_path, *extra)[1]["run_dir"]
            for extra in ((), ("--set", "model.name=linear"))]
    proc, summary = ensemble(tmp_path, *runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = Path(summary["run_dir"])
    scores = json.loads((folder / "scores.json").read_text())
    oof = pd.read_parquet(folder / "oof.parquet").merge(train[["id", "label"]], on="id")
    weighted = cp.score_cv(oof[["p_0", "p_1"]].to_numpy(), oof["label"].to_numpy(),
                           oof["fold"].to_numpy(), get_metric("qwk"), weight=oof["weight"])
    assert scores["weight"] == "w"
    assert scores["oof"] == pytest.approx(weighted.oof, abs=1e-12)
    assert summary["cut_points"] == pytest.approx(weighted.cuts.tolist(), abs=1e-12)
    for member, run in zip(summary["members"], runs):  # each member cut as its run was
        assert member["oof_score"] == pytest.approx(
            json.loads((Path(run) / "scores.json").read_text())["oof"])
