"""kit.ensemble: voting with known answers, weight fitting, alignment refusals, end to end."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit import ensemble
from kit.config import CompetitionConfig, Config, DataConfig, SubmissionConfig, to_toml
from kit.errors import ConfigError, DataError
from kit.metrics import get_metric
from kit.submission import validate_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "gender_submission.csv"
TEST_IDS = np.arange(892, 902)


# --- voting ------------------------------------------------------------------------------


def test_soft_vote_is_the_mean_and_weighted_uses_the_weights():
    a, b = np.array([[0.8, 0.2], [0.1, 0.9]]), np.array([[0.4, 0.6], [0.3, 0.7]])
    np.testing.assert_allclose(ensemble.soft_vote([a, b]), [[0.6, 0.4], [0.2, 0.8]])
    np.testing.assert_allclose(ensemble.soft_vote([a, b], [0.25, 0.75]), [[0.5, 0.5], [0.25, 0.75]])


def test_hard_vote_majority_wins_even_against_summed_probability():
    members = [np.array([[0.45, 0.55, 0.0]])] * 2 + [np.array([[0.9, 0.1, 0.0]])]
    # class 0 has the larger summed probability (1.8 vs 1.2) but one vote against two
    np.testing.assert_array_equal(ensemble.hard_vote(members), [[0.0, 1.0, 0.0]])


def test_hard_vote_two_two_tie_goes_to_higher_summed_probability():
    members = [np.array([[0.1, 0.5, 0.4]])] * 2 + [np.array([[0.0, 0.3, 0.7]])] * 2
    # votes 2-2 between classes 1 and 2; sums 1.6 vs 2.2: the higher class index wins here
    np.testing.assert_array_equal(ensemble.hard_vote(members), [[0.0, 0.0, 1.0]])


def test_hard_vote_full_tie_goes_to_lower_class_index():
    members = [np.array([[0.0, 0.5, 0.5 - 0.1]])] * 2 + [np.array([[0.0, 0.45, 0.55]])] * 2
    # votes 2-2 and sums 1.9 vs 1.9 (equal on paper, not bit-for-bit in float): class 1
    out = ensemble.hard_vote(members)
    np.testing.assert_array_equal(out, [[0.0, 1.0, 0.0]])
    assert out.dtype == np.float64


def test_fold_vote_hard_is_one_hot_majority_per_row():
    folds = [
        np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
        np.array([[0.7, 0.3], [0.6, 0.4], [0.4, 0.6]]),
        np.array([[0.2, 0.8], [0.3, 0.7], [0.45, 0.55]]),
    ]
    np.testing.assert_array_equal(ensemble.fold_vote_hard(folds), [[1, 0], [0, 1], [0, 1]])
    with pytest.raises(ValueError):
        ensemble.fold_vote_hard([np.ones((3, 2)), np.ones((2, 2))])


# --- weights -----------------------------------------------------------------------------


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_fit_weights_recover_the_member_that_is_the_truth():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    truth = _softmax(3.0 * np.eye(3)[labels] + 0.3 * rng.normal(size=(600, 3)))
    noise = [rng.dirichlet(np.ones(3), 600) for _ in range(2)]
    w = ensemble.fit_weights([noise[0], truth, noise[1]], labels)
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
    w = ensemble.fit_weights([a, b], labels)
    np.testing.assert_allclose(w, [0.5, 0.5], atol=1e-6)
    assert accuracy(labels, ensemble.soft_vote([a, b], w)) == 1.0
    blend, fold_weights = ensemble.cross_validated_blend([a, b], labels, folds)
    np.testing.assert_allclose(fold_weights[0], [0, 1], atol=1e-6)
    np.testing.assert_allclose(fold_weights[1], [1, 0], atol=1e-6)
    np.testing.assert_allclose(blend, np.array([wrong] * 4), atol=1e-6)
    assert accuracy(labels, blend) == 0.0


def test_parse_weights_normalises_and_refuses_bad_lists():
    np.testing.assert_allclose(ensemble.parse_weights("1,3", 2), [0.25, 0.75])
    for text, says in [("0.3", "1 weight(s) for 2"), ("a,b", "comma-separated"), ("-1,2", ">= 0")]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            ensemble.parse_weights(text, 2)


# --- run folders -------------------------------------------------------------------------


def make_run(root: Path, name: str, oof_p1, test_p1, *, slug="titanic", ids=None,
             test_ids=TEST_IDS, classes=("0", "1"), shuffle=False, seed=0,
             target_dtype=int) -> Path:
    """A run folder per the contract: binary probabilities of class 1 given per row."""
    run = root / slug / name
    run.mkdir(parents=True)
    ids = np.arange(1, len(oof_p1) + 1) if ids is None else np.asarray(ids)
    targets = (np.arange(len(ids)) % 3 == 0).astype(target_dtype)  # truth shared by all runs
    oof = pd.DataFrame({"id": ids, "fold": np.arange(len(ids)) % 2, "target": targets})
    test = pd.DataFrame({"id": test_ids})
    for frame, p1 in ((oof, np.asarray(oof_p1, float)), (test, np.asarray(test_p1, float))):
        frame[f"p_{classes[0]}"], frame[f"p_{classes[1]}"] = 1 - p1, p1
    if shuffle:  # rows out of id order: the ensemble must align by id, not position
        oof = oof.sample(frac=1, random_state=seed)
        test = test.sample(frac=1, random_state=seed)
    oof.to_parquet(run / "oof.parquet", index=False)
    test.to_parquet(run / "test_pred.parquet", index=False)
    scores = {"metric": "accuracy", "mode": "max", "mean": 0.0, "std": 0.0, "folds": [],
              "oof": 0.0, "classes": list(classes)}
    (run / "scores.json").write_text(json.dumps(scores))
    cfg = Config(
        competition=CompetitionConfig(slug=slug, metric="accuracy"),
        data=DataConfig(id="PassengerId", target="Survived", sample_submission=SAMPLE),
        submission=SubmissionConfig(kind="label"),
    )
    (run / "config.toml").write_text(to_toml(cfg))
    return run


def targets(n: int) -> np.ndarray:
    return (np.arange(n) % 3 == 0).astype(int)


@pytest.fixture
def two_runs(tmp_path):
    """Member A mostly right, member B right on other rows; a sample submission in data/."""
    t = targets(12)
    a_p1 = np.where(t == 1, 0.8, 0.3)
    a_p1[[1, 2]] = 0.6  # A wrong on ids 2, 3, where B is confidently right
    b_p1 = np.where(t == 1, 0.6, 0.4)
    b_p1[[1, 2]] = 0.2
    b_p1[4] = 0.9  # B wrong on id 5, and the mean with A (0.3) too
    runs = tmp_path / "runs"
    a = make_run(runs, "A_mlp_raw", a_p1, np.linspace(0.1, 0.9, 10))
    b = make_run(runs, "B_gbdt_raw", b_p1, np.linspace(0.9, 0.1, 10), shuffle=True)
    data = tmp_path / "data" / "titanic"
    data.mkdir(parents=True)
    pd.DataFrame({"PassengerId": TEST_IDS, "Survived": 0}).to_csv(data / SAMPLE, index=False)
    return a, b


def _refused(tmp_path, a, name="B_bad", **kwargs) -> str:
    b = make_run(tmp_path / "runs", name, np.full(12, 0.5), np.full(10, 0.5), **kwargs)
    with pytest.raises(DataError) as info:
        ensemble.stack_runs([ensemble.load_run(a), ensemble.load_run(b)], "titanic")
    message = str(info.value)
    assert str(b) in message
    return message


def test_missing_extra_and_test_ids_are_refused_with_the_ids(tmp_path, two_runs):
    a, _ = two_runs
    missing = _refused(tmp_path, a, ids=[*range(1, 12), 99])
    assert "missing 1 id(s) ['12']" in missing and "extra 1 id(s) ['99']" in missing
    shifted = _refused(tmp_path, a, name="B_shifted", test_ids=TEST_IDS + 1)
    assert "test_pred.parquet ids differ" in shifted
    assert "missing 1 id(s) ['892']" in shifted and "extra 1 id(s) ['902']" in shifted


def test_other_classes_are_refused(tmp_path, two_runs):
    message = _refused(tmp_path, two_runs[0], classes=("no", "yes"))
    assert "classes ['no', 'yes']" in message


def test_other_competition_is_refused(tmp_path, two_runs):
    message = _refused(tmp_path, two_runs[0], slug="spaceship-titanic")
    assert "'spaceship-titanic', not 'titanic'" in message


def test_unfinished_run_folder_is_refused(tmp_path, two_runs):
    (two_runs[1] / "oof.parquet").unlink()
    with pytest.raises(DataError, match="lacks oof.parquet"):
        ensemble.load_run(two_runs[1])


def test_soft_ensemble_is_aligned_by_id_and_can_be_a_member_again(tmp_path, two_runs):
    a, b = two_runs
    roots = {"runs_root": tmp_path / "runs", "submissions_root": tmp_path / "subs",
             "data_dir": tmp_path / "data", "log": lambda _: None}
    first = ensemble.ensemble_runs("titanic", [a, b.name], method="soft", **roots)
    out = Path(first["run_dir"])
    oof = pd.read_parquet(out / "oof.parquet").set_index("id")
    want = (pd.read_parquet(a / "oof.parquet").set_index("id")["p_1"]
            + pd.read_parquet(b / "oof.parquet").set_index("id")["p_1"]) / 2
    np.testing.assert_allclose(oof["p_1"], want.loc[oof.index])
    assert first["oof_score"] == pytest.approx(11 / 12)  # only id 5 wrong (0.9 + 0.3 > 1)
    again = ensemble.ensemble_runs("titanic", [out, a], method="hard", **roots)
    assert Path(again["run_dir"]) != out and again["oof_score_cv"] is None
    given = ensemble.ensemble_runs("titanic", [a, b], method="weighted", weights="1,0", **roots)
    assert given["oof_score"] == pytest.approx(10 / 12) and given["weights_source"] == "given"
    with pytest.raises(ConfigError, match="--weights applies to --method weighted"):
        ensemble.ensemble_runs("titanic", [a, b], method="soft", weights="1,1", **roots)


def test_float_targets_still_give_the_sample_int_labels(tmp_path, two_runs):
    # The tabular pipeline may read a label column as float: classes "0.0" / "1.0" in
    # scores.json, while the sample submission holds ints.
    runs = tmp_path / "runs"
    kwargs = {"classes": ("0.0", "1.0"), "target_dtype": float}
    a = make_run(runs, "F_a", np.full(12, 0.7), np.linspace(0, 1, 10), **kwargs)
    b = make_run(runs, "F_b", np.full(12, 0.9), np.linspace(0, 1, 10), **kwargs)
    summary = ensemble.ensemble_runs(
        "titanic", [a, b], runs_root=runs, submissions_root=tmp_path / "subs",
        data_dir=tmp_path / "data", log=lambda _: None,
    )
    frame = validate_file(summary["submission"], tmp_path / "data" / "titanic" / SAMPLE)
    assert frame["Survived"].tolist() == [0] * 5 + [1] * 5


# --- the script --------------------------------------------------------------------------


def _script(tmp_path, *args):
    cmd = [sys.executable, str(ROOT / "scripts" / "ensemble.py"), "--comp", "titanic", *args,
           "--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"),
           "--data", str(tmp_path / "data" / "titanic")]
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )


def test_script_weighted_end_to_end(tmp_path, two_runs):
    summary_path = tmp_path / "summary.json"
    done = _script(tmp_path, *map(str, two_runs), "--method", "weighted",
                   "--summary-json", str(summary_path))
    assert done.returncode == 0, done.stderr
    assert "cross-validated" in done.stdout and "correlation" in done.stdout
    summary = json.loads(summary_path.read_text())
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "titanic"
    assert run_dir.name.endswith("_ensemble_weighted")
    assert Path(summary["submission"]) == tmp_path / "subs" / "titanic" / f"{run_dir.name}.csv"
    sample = tmp_path / "data" / "titanic" / SAMPLE
    validate_file(summary["submission"], sample)
    validate_file(run_dir / "submission.csv", sample)
    assert summary["method"] == "weighted" and summary["metric"] == "accuracy"
    assert [m["run_dir"] for m in summary["members"]] == [str(p) for p in two_runs]
    assert summary["members"][0]["oof_score"] == pytest.approx(10 / 12)
    assert sum(summary["weights"]) == pytest.approx(1) and min(summary["weights"]) >= 0
    assert summary["oof_score"] == summary["oof_score_cv"]
    assert set(summary["fold_weights"]) == {"0", "1"}
    for name in ("ensemble.json", "correlation.png", "oof.parquet", "test_pred.parquet",
                 "scores.json", "config.toml"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "correlation.png").read_bytes()[:4] == b"\x89PNG"
    scores = json.loads((run_dir / "scores.json").read_text())
    assert scores["oof"] == pytest.approx(summary["oof_score"]) and scores["classes"] == ["0", "1"]


def test_script_refuses_another_competition_with_status_2(tmp_path, two_runs, capsys):
    # In-process through main() (the subprocess path is covered above): same code, 3 s less.
    path = ROOT / "scripts" / "ensemble.py"
    spec = importlib.util.spec_from_file_location("ensemble_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    other = make_run(tmp_path / "runs", "C_other", np.full(12, 0.5), np.full(10, 0.5),
                     slug="digit-recognizer")
    status = script.main(["--comp", "titanic", str(two_runs[0]), str(other),
                          "--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: run ") and "'digit-recognizer', not 'titanic'" in err
    assert not list((tmp_path / "runs" / "titanic").glob("*_ensemble_*"))
