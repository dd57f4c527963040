"""kit.ensembles.build: run folders checked and aligned, ensembles end to end (classification and
regression), the script. The array math is in tests/test_blending.py."""

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

from kit import run_folder  # run_folder.pred_frame: pytest would collect a bare pred_frame
from kit.config import CompetitionConfig, Config, DataConfig, SubmissionConfig, load_config, to_toml
from kit.ensembles import build as ensemble
from kit.errors import ConfigError, DataError
from kit.metrics.registry import get_metric
from kit.run_folder import load_run, oof_frame, scores_dict, write_predictions, write_scores
from kit.submission import validate_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "gender_submission.csv"
TEST_IDS = np.arange(892, 902)


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
              "oof": 0.0, "classes": list(classes), "split": "shared0split"}
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
        ensemble.stack_runs([load_run(a), load_run(b)], "titanic")
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
        load_run(two_runs[1])


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


# --- regression ----------------------------------------------------------------------------

HOUSE = "house-prices"
HOUSE_TEST_IDS = np.arange(1461, 1467)
SALE_PRICE = 50_000.0 + 25_000.0 * np.arange(12)  # the shared truth of every regression run


def house_config(tmp_path: Path, metric: str = "rmsle") -> Config:
    """A regression Config as load_config builds it from a competition's config.toml."""
    path = tmp_path / "competitions" / HOUSE / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[competition]\nproblem = "regression"\nmetric = "{metric}"\n\n'
        '[data]\nid = "Id"\ntarget = "SalePrice"\nsample_submission = "sample_submission.csv"\n'
    )
    return load_config(path)


def make_regression_run(tmp_path: Path, name: str, oof_pred, test_pred, *,
                        metric: str = "rmsle") -> Path:
    """A regression run folder written through kit.run_folder, as the pipeline writes one."""
    cfg = house_config(tmp_path, metric)
    run = tmp_path / "runs" / HOUSE / name
    run.mkdir(parents=True)
    ids, folds = np.arange(1, 13), np.arange(12) % 2
    write_predictions(
        run,
        oof_frame(ids, folds, SALE_PRICE, np.asarray(oof_pred, float)[:, None], []),
        run_folder.pred_frame(HOUSE_TEST_IDS, np.asarray(test_pred, float)[:, None], []),
    )
    m = get_metric(metric)
    scores = [m(SALE_PRICE[folds == k], np.asarray(oof_pred)[folds == k]) for k in (0, 1)]
    write_scores(run, scores_dict(m, "regression", scores, m(SALE_PRICE, oof_pred), [],
                                  split="shared0split"))
    (run / "config.toml").write_text(to_toml(cfg))
    sample = tmp_path / "data" / HOUSE / "sample_submission.csv"
    sample.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"Id": HOUSE_TEST_IDS, "SalePrice": 180921.19}).to_csv(sample, index=False)
    return run


def house_roots(tmp_path: Path) -> dict:
    return {"runs_root": tmp_path / "runs", "submissions_root": tmp_path / "subs",
            "data_dir": tmp_path / "data", "log": lambda _: None}


def test_regression_soft_ensemble_averages_log1p_and_is_a_member_again(tmp_path):
    a_oof, b_oof = SALE_PRICE * 1.2, SALE_PRICE / 1.1
    a_test, b_test = np.full(6, 100.0), np.full(6, 10_000.0)
    a = make_regression_run(tmp_path, "A_gbdt_raw", a_oof, a_test)
    b = make_regression_run(tmp_path, "B_mlp_raw", b_oof, b_test)
    summary = ensemble.ensemble_runs(HOUSE, [a, b], method="soft", **house_roots(tmp_path))
    out = load_run(summary["run_dir"])  # the ensemble's folder honours the contract
    assert out.problem == "regression" and out.classes == [] and out.columns == ["pred"]
    want = np.expm1((np.log1p(a_oof) + np.log1p(b_oof)) / 2)
    by_id = out.oof.set_index("id").loc[np.arange(1, 13)]
    np.testing.assert_allclose(by_id["pred"], want)  # not the arithmetic mean: 1.2 / 1.1 != 1
    np.testing.assert_array_equal(by_id["target"], SALE_PRICE)
    np.testing.assert_allclose(out.test["pred"], np.sqrt(101 * 10001) - 1)  # 1004.04, not 5050
    rmsle = get_metric("rmsle")
    assert summary["oof_score"] == pytest.approx(rmsle(SALE_PRICE, want))
    scores = json.loads((out.path / "scores.json").read_text())
    assert scores["problem"] == "regression" and scores["classes"] == [] and scores["metric"] == "rmsle"
    sample = tmp_path / "data" / HOUSE / "sample_submission.csv"
    frame = validate_file(summary["submission"], sample, metric="rmsle")
    np.testing.assert_allclose(frame["SalePrice"], np.sqrt(101 * 10001) - 1)
    assert frame["SalePrice"].dtype == np.float64
    again = ensemble.ensemble_runs(HOUSE, [out.path, a], method="weighted", weights="1,1",
                                   **house_roots(tmp_path))
    np.testing.assert_allclose(load_run(again["run_dir"]).test["pred"],
                               np.expm1((np.log1p(1004.0378) + np.log1p(100)) / 2), rtol=1e-6)


def test_regression_weighted_puts_the_weight_on_the_truth_cross_validated(tmp_path):
    noisy = SALE_PRICE * (1 + 0.3 * np.sin(np.arange(12)))
    truth = make_regression_run(tmp_path, "A_truth", SALE_PRICE, np.full(6, 2e5), metric="rmse")
    other = make_regression_run(tmp_path, "B_noisy", noisy, np.full(6, 1e5), metric="rmse")
    summary = ensemble.ensemble_runs(HOUSE, [other, truth], method="weighted",
                                     **house_roots(tmp_path))
    assert summary["metric"] == "rmse" and summary["weights_source"] == "fitted"
    assert summary["weights"][1] > 0.99, summary["weights"]
    for w in summary["fold_weights"].values():
        assert w[1] > 0.99, summary["fold_weights"]
    assert summary["oof_score_cv"] == pytest.approx(0.0, abs=1.0)  # dollars, on ~200k prices
    assert summary["members"][0]["oof_score"] > 10_000
    given = ensemble.ensemble_runs(HOUSE, [other, truth], method="weighted", weights="1,0",
                                   **house_roots(tmp_path))
    assert given["oof_score"] == pytest.approx(summary["members"][0]["oof_score"])


def test_hard_voting_on_regression_runs_is_refused_before_any_file(tmp_path):
    a = make_regression_run(tmp_path, "A", SALE_PRICE, np.full(6, 1e5))
    b = make_regression_run(tmp_path, "B", SALE_PRICE * 1.1, np.full(6, 1e5))
    with pytest.raises(ConfigError, match="--method hard") as info:
        ensemble.ensemble_runs(HOUSE, [a, b], method="hard", **house_roots(tmp_path))
    assert "regression" in str(info.value) and "--method soft" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "runs" / HOUSE).iterdir()) == ["A", "B"]
    assert not (tmp_path / "subs").exists()


def test_a_classification_and_a_regression_run_do_not_mix(tmp_path):
    regression = make_regression_run(tmp_path, "R_gbdt", SALE_PRICE, np.full(6, 1e5))
    labels = make_run(tmp_path / "runs", "C_mlp", np.full(12, 0.5), np.full(6, 0.5),
                      slug=HOUSE, test_ids=HOUSE_TEST_IDS)
    with pytest.raises(DataError) as info:
        ensemble.stack_runs([load_run(labels), load_run(regression)], HOUSE)
    message = str(info.value)
    assert str(labels) in message and str(regression) in message
    assert "is a regression" in message and "a classification" in message


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


def test_members_on_other_splits_or_with_missing_folds_are_refused(two_runs, tmp_path):
    a, b = two_runs
    roots = {"runs_root": tmp_path / "runs", "submissions_root": tmp_path / "subs",
             "data_dir": tmp_path / "data"}
    scores = json.loads((b / "scores.json").read_text())
    (b / "scores.json").write_text(json.dumps({**scores, "split": "other0split"}))
    with pytest.raises(DataError, match=r"split other0split.*split shared0split.*"
                                        r"--allow-different-folds"):
        ensemble.ensemble_runs("titanic", [a, b], method="soft", **roots)
    summary = ensemble.ensemble_runs("titanic", [a, b], method="soft",
                                     allow_different_folds=True, log=lambda _: None, **roots)
    assert len(summary["warnings"]) == 1 and "other0split" in summary["warnings"][0]
    assert json.loads((Path(summary["run_dir"]) / "scores.json").read_text())["split"] == ""
    (b / "scores.json").write_text(json.dumps({**scores, "n_splits": 5, "repeats": 1,
                                               "n_folds_trained": 2}))
    with pytest.raises(DataError, match=r"trained 2 of its 5 fold fits.*--resume"):
        ensemble.ensemble_runs("titanic", [a, b], method="soft", **roots)


def test_hill_options_are_checked_and_recorded(two_runs, tmp_path):
    from kit.ensembles.hill_climbing import HillSettings

    roots = {"runs_root": tmp_path / "runs", "submissions_root": tmp_path / "subs",
             "data_dir": tmp_path / "data", "log": lambda _: None}
    bad = [("soft", HillSettings(bags=5), "apply to --method hill, not 'soft'"),
           ("hill", HillSettings(bags=0), "--bags 0: give 1"),
           ("hill", HillSettings(bag_fraction=1.5), "--bag-fraction 1.5"),
           ("hill", HillSettings(max_steps=0), "--max-steps 0")]
    for method, settings, message in bad:
        with pytest.raises(ConfigError, match=re.escape(message)):
            ensemble.ensemble_runs("titanic", two_runs, method=method, hill=settings, **roots)
    assert not (tmp_path / "runs" / "titanic").exists() or not list(
        (tmp_path / "runs" / "titanic").glob("*_ensemble_*"))
    summary = ensemble.ensemble_runs("titanic", two_runs, method="hill",
                                     hill=HillSettings(max_steps=3), **roots)
    saved = json.loads((Path(summary["run_dir"]) / "ensemble.json").read_text())
    assert saved["settings"] == {"max_steps": 3, "negative_weights": False, "bags": 1,
                                 "bag_fraction": 0.5, "seed": 0}


def test_an_ensemble_of_demo_trained_runs_keeps_the_demo_mark(tmp_path, two_runs):
    """issue 27 item 10: an ensemble of _demo runs was named like a real one."""
    from kit.submission import demo_trained

    a, b = two_runs
    demo_a, demo_b = a.rename(a.with_name(a.name + "_demo")), b.with_name("B_gbdt_raw_2")
    b.rename(demo_b)
    (demo_b / "run.json").write_text(json.dumps({"demo": True}))  # the mark in run.json only
    roots = {"runs_root": tmp_path / "runs", "submissions_root": tmp_path / "subs",
             "data_dir": tmp_path / "data", "log": lambda _: None}
    for members in ([demo_a, demo_b], [demo_b, demo_a]):
        summary = ensemble.ensemble_runs("titanic", members, method="soft", **roots)
        assert re.search(r"_ensemble_soft_demo(-\d+)?$", Path(summary["run_dir"]).name)
        assert summary["demo"] and Path(summary["submission"]).stem.endswith("_demo")
        assert demo_trained(summary["submission"]) and demo_trained(summary["run_dir"])
    real = make_run(tmp_path / "runs", "C_mlp_raw", np.full(12, 0.5), np.full(10, 0.5))
    other = make_run(tmp_path / "runs", "D_mlp_raw", np.full(12, 0.4), np.full(10, 0.4))
    summary = ensemble.ensemble_runs("titanic", [real, other], method="soft", **roots)
    assert not summary["demo"] and not demo_trained(summary["submission"])


def test_test_from_refit_applies_the_oof_weights_to_the_refit_predictions(tmp_path, two_runs):
    """issue 31 item 2: weights from the fold models' OOF, applied to refit/test_pred.parquet;
    a member without refit predictions is refused by name before anything is written."""
    a, b = two_runs
    roots = {"runs_root": tmp_path / "runs", "submissions_root": tmp_path / "subs",
             "data_dir": tmp_path / "data", "log": lambda _: None}
    refit = {a: np.linspace(0.2, 0.3, 10), b: np.linspace(0.7, 0.6, 10)}
    (a / "refit").mkdir()
    run_folder.pred_frame(TEST_IDS[::-1], np.column_stack([1 - refit[a], refit[a]])[::-1],
                          ["0", "1"]).to_parquet(a / "refit" / "test_pred.parquet")
    with pytest.raises(DataError, match=re.escape(f"--test-from refit: {b} hold(s) no refit/")):
        ensemble.ensemble_runs("titanic", [a, b], method="hill", test_from="refit", **roots)
    assert not list((tmp_path / "runs" / "titanic").glob("*_ensemble_*"))
    (b / "refit").mkdir()
    run_folder.pred_frame(TEST_IDS, np.column_stack([1 - refit[b], refit[b]]),
                          ["0", "1"]).to_parquet(b / "refit" / "test_pred.parquet")
    folds = ensemble.ensemble_runs("titanic", [a, b], method="weighted", weights="1,3", **roots)
    summary = ensemble.ensemble_runs("titanic", [a, b], method="weighted", weights="1,3",
                                     test_from="refit", **roots)
    assert summary["oof_score"] == folds["oof_score"] and summary["test_from"] == "refit"
    test = pd.read_parquet(Path(summary["run_dir"]) / "test_pred.parquet").set_index("id")
    np.testing.assert_allclose(test.loc[TEST_IDS, "p_1"], (refit[a] + 3 * refit[b]) / 4)
    saved = json.loads((Path(summary["run_dir"]) / "ensemble.json").read_text())
    assert saved["test_from"] == "refit" and folds["test_from"] == "folds"
    with pytest.raises(ConfigError, match="--test-from 'oof' is not one of folds, refit"):
        ensemble.ensemble_runs("titanic", [a, b], test_from="oof", **roots)
