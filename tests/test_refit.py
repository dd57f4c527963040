"""Refit on all rows (kit/pipeline/refit.py, train.py --refit --seeds N).

The length rule is pinned on fold records (mean best round x K/(K-1), the warning at the
round budget, the time-ordered and network cases); one real small run on the Titanic demo
data (lgbm, 20 rounds, 2 of 5 folds, 2 refit seeds) checks the files, that the submission
is the seeds' mean, that predict.py gives it back bit for bit and that --resume trains a
missing refit model and keeps a finished one; bad input exits 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_train

from kit.cli import run_script, train_main
from kit.config import Config, apply_overrides
from kit.pipeline.refit import combine, refit_length
from kit.predict import predict_run


def config(**overrides) -> Config:
    return apply_overrides(Config(), overrides, source="test")


def booster_infos(best: list[int], rounds: list[int]) -> list[dict]:
    return [{"best_iteration": b, "rounds": r} for b, r in zip(best, rounds, strict=True)]


def test_booster_rounds_are_the_folds_mean_best_round_times_k_over_k_minus_1():
    cfg = config(**{"model.name": "xgb", "cv.n_splits": 5, "cv.repeats": 2})
    # 10 fold fits under 2 repeats: K stays n_splits = 5
    overrides, rule, warned = refit_length(cfg, booster_infos([40, 44] * 5, [140, 144] * 5))
    assert overrides == {"model.params.xgb.rounds": round(42 * 5 / 4)}  # 52.5 -> 52
    assert "x 5/4" in rule and warned == []


def test_a_best_round_at_the_round_budget_is_warned_naming_the_key():
    cfg = config(**{"model.name": "lgbm", "cv.n_splits": 4})
    overrides, _, warned = refit_length(cfg, booster_infos([30, 12, 30, 20], [30, 62, 30, 70]))
    assert overrides == {"model.params.lgbm.rounds": round(23 * 4 / 3)}
    assert len(warned) == 1 and "fold 0, 2" in warned[0]
    assert "raise model.params.lgbm.rounds" in warned[0]


def test_time_ordered_cv_takes_the_last_fits_best_round():
    cfg = config(**{"model.name": "xgb", "cv.strategy": "time", "cv.time": "date"})
    overrides, rule, _ = refit_length(cfg, booster_infos([10, 20, 33], [110, 120, 133]))
    assert overrides == {"model.params.xgb.rounds": 33} and "last fit" in rule


def test_networks_scale_the_best_epoch_and_keep_the_folds_batch_size():
    cfg = config(**{"model.name": "mlp", "cv.n_splits": 5, "train.epochs": 20,
                    "train.batch_size": 0})
    infos = [{"best_epoch": e, "train_rows": 712} for e in (7, 9)]  # 0-based: 8 and 10 epochs
    overrides, rule, warned = refit_length(cfg, infos)
    assert overrides["train.epochs"] == round(9 * 5 / 4) and warned == []
    assert overrides["train.patience"] > overrides["train.epochs"]  # never stops early
    assert overrides["train.batch_size"] == 32 and "batch size 32" in rule


def test_scikit_learn_kinds_refit_with_their_settings():
    overrides, rule, _ = refit_length(config(**{"model.name": "gbdt"}), [{}, {}])
    assert overrides == {} and "configured settings" in rule


def test_with_folds_is_half_refit_half_folds():
    refit = [np.array([[0.2, 0.8]]), np.array([[0.4, 0.6]])]
    folds = np.array([[0.9, 0.1]])
    np.testing.assert_allclose(combine(refit, folds, "only"), [[0.3, 0.7]])
    np.testing.assert_allclose(combine(refit, folds, "with_folds"), [[0.6, 0.4]])


@pytest.fixture(scope="module")
def refit_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("refit")
    proc, summary = run_train(tmp, tmp / "data", "--demo", "--fits", "2", "--set",
                              "model.name=lgbm", "--set", "model.params.lgbm.rounds=20",
                              "--refit", "--seeds", "2", fresh=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc, Path(summary["run_dir"]), summary


def test_refit_run_writes_n_models_and_submits_their_mean(refit_run):
    _, proc, run, summary = refit_run
    assert "no OOF rows, so no score" in proc.stdout
    assert "raise model.params.lgbm.rounds" in proc.stderr  # 20 rounds: the budget stops it
    scores = json.loads((run / "scores.json").read_text())
    record = scores["refit"]
    assert record["mode"] == "only" and record["seeds"] == [42, 43] and record["oof"] is None
    assert json.loads((run / "run.json").read_text())["refit"]["seeds"] == [42, 43]
    preds = []
    for i in range(2):
        done = json.loads((run / "refit" / f"seed{i}" / "done.json").read_text())
        assert done["seed"] == 42 + i and done["rounds"] == record["length"][
            "model.params.lgbm.rounds"] and done["train_rows"] == 891
        assert (run / "refit" / f"seed{i}" / "model.txt").is_file()
        preds.append(pd.read_parquet(run / "refit" / f"seed{i}" / "test_pred.parquet"))
    assert not preds[0]["p_1"].equals(preds[1]["p_1"])  # the seeds bag other rows
    submitted = pd.read_parquet(run / "refit" / "test_pred.parquet")
    np.testing.assert_array_equal(submitted["p_1"], (preds[0]["p_1"] + preds[1]["p_1"]) / 2)
    labels = pd.read_csv(run / "submission.csv")["Survived"].to_numpy()
    np.testing.assert_array_equal(labels, (submitted["p_1"] > submitted["p_0"]).astype(int))
    assert summary["cv"]["fold_scores"] == scores["fold_scores"]  # the CV stays the folds'


def test_predict_reproduces_the_refit_submission_bit_for_bit(refit_run, tmp_path):
    tmp, _, run, _ = refit_run
    out = predict_run(run, data=tmp / "data", out=tmp_path)
    assert out["max_abs_diff_vs_run"] == 0.0
    assert Path(out["submission"]).read_bytes() == (run / "submission.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "test_pred.parquet"),
                                  pd.read_parquet(run / "refit" / "test_pred.parquet"))


def test_resume_trains_a_missing_refit_model_and_keeps_a_finished_one(refit_run):
    tmp, _, run, _ = refit_run
    before = (run / "submission.csv").read_bytes()
    kept = (run / "refit" / "seed0" / "model.txt").stat().st_mtime_ns
    (run / "refit" / "seed1" / "done.json").unlink()  # interrupted before its done.json
    proc, _ = run_train(tmp, tmp / "data", "--resume", str(run), fresh=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "refit" / "seed1" / "done.json").is_file()
    assert (run / "refit" / "seed0" / "model.txt").stat().st_mtime_ns == kept
    assert (run / "submission.csv").read_bytes() == before


@pytest.mark.parametrize(("flags", "named"), [
    (["--refit", "--seeds", "0"], "train.refit_seeds = 0"),
    (["--seeds", "2"], "add --refit"),
    (["--refit", "--set", "model.name=mlp", "--set", "train.scheduler=plateau"],
     "train.scheduler = \"plateau\""),
    (["--refit", "--set", "data.out_of_core=on", "--set", "model.name=xgb"],
     "data.out_of_core = \"off\""),
])
def test_bad_refit_input_exits_2_with_one_line(tmp_path, titanic_demo, capsys, flags, named):
    argv = ["--comp", "titanic", "--data", str(titanic_demo), "--runs", str(tmp_path / "runs"),
            "--submissions", str(tmp_path / "subs"), *flags]
    assert run_script(train_main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0], err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "subs").exists()


def test_a_refit_after_fewer_folds_is_trained_again_when_the_run_resumes_with_more(tmp_path):
    """--fits 1 --refit refits from one fold's best round; the resumed run's folds give
    another length (here 54 rounds, then 61), so its refit is trained again."""
    args = ["--set", "model.name=lgbm", "--set", "model.params.lgbm.rounds=400", "--refit"]
    proc, cut = run_train(tmp_path, tmp_path / "data", "--demo", "--fits", "1", *args,
                          fresh=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(cut["run_dir"])
    first = json.loads((run / "refit" / "seed0" / "done.json").read_text())["rounds"]
    proc, _ = run_train(tmp_path, tmp_path / "data", "--resume", str(run), "--fits", "2",
                        fresh=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    length = json.loads((run / "scores.json").read_text())["refit"]["length"]
    again = json.loads((run / "refit" / "seed0" / "done.json").read_text())["rounds"]
    assert again == length["model.params.lgbm.rounds"]
    assert again != first and "training it again" in proc.stdout
