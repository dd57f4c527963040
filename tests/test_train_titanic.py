"""End-to-end: scripts/train.py on the Titanic demo data, into temporary folders."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import majority_share, run_train

from kit.submission import validate_file


def train(tmp_path, data, *extra):
    return run_train(tmp_path, data, *extra, fresh=False)


@pytest.mark.parametrize("model", ["mlp", "gbdt"])
def test_demo_run_writes_every_artifact(tmp_path, model):
    proc, summary = train(tmp_path, tmp_path / "data", "--demo", "--fits", "2",
                          "--set", f"model.name={model}", "--set", "train.epochs=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DEMO DATA" in proc.stdout
    run = Path(summary["run_dir"])
    for name in ["config.toml", "run.json", "folds.csv", "oof.parquet", "test_pred.parquet",
                 "scores.json", "submission.csv", "fold0/preprocessors.json",
                 "fold1/done.json"]:
        assert (run / name).exists(), name
    if model == "mlp":
        assert list((run / "fold0").glob("best_e*_accuracy0.*.pt"))
        assert (run / "fold0" / "last.pt").exists()
        assert len(pd.read_csv(run / "fold0" / "history.csv")) >= 1
    oof = pd.read_parquet(run / "oof.parquet")
    assert list(oof.columns) == ["id", "fold", "target", "p_0", "p_1"]
    assert set(oof["fold"]) == {0, 1}
    scores = json.loads((run / "scores.json").read_text())
    baseline = majority_share(tmp_path / "data" / "train.csv", "Survived")  # 0.62 here
    assert len(scores["fold_scores"]) == 2 and scores["mean"] > baseline + 0.05  # signal learnt
    validate_file(summary["submission"], tmp_path / "data" / "gender_submission.csv")
    assert summary["cv"]["metric"] == "accuracy" and summary["submission"].endswith("_demo.csv")


def test_same_seed_gives_identical_oof(tmp_path, titanic_demo):
    args = ("--fits", "1", "--set", "model.name=mlp", "--set", "train.epochs=2", "--seed", "7")
    a = train(tmp_path / "a", titanic_demo, *args)[1]
    b = train(tmp_path / "b", titanic_demo, *args)[1]
    oof_a = pd.read_parquet(Path(a["run_dir"]) / "oof.parquet")
    oof_b = pd.read_parquet(Path(b["run_dir"]) / "oof.parquet")
    pd.testing.assert_frame_equal(oof_a, oof_b)


def test_device_data_run_trains_and_predict_reproduces_it(tmp_path, titanic_demo):
    """train.device_data: the table transformed once, batches sliced from tensors."""
    from kit.cli import train_main
    from kit.predict import predict_main

    summary = train_main(["--comp", "titanic", "--data", str(titanic_demo), "--fits", "2",
                          "--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"),
                          "--set", "model.name=mlp", "--set", "train.device_data=true",
                          "--set", "train.epochs=3"])
    run = Path(summary["run_dir"])
    oof = pd.read_parquet(run / "oof.parquet")
    assert oof["id"].is_unique and set(oof["fold"]) == {0, 1}
    assert summary["cv"]["mean"] > majority_share(titanic_demo / "train.csv", "Survived") + 0.05
    validate_file(summary["submission"], titanic_demo / "gender_submission.csv")
    again = predict_main(["--run", str(run), "--data", str(titanic_demo)])
    assert again["max_abs_diff_vs_run"] < 1e-6


def test_missing_data_explains_the_download_and_writes_nothing(tmp_path):
    proc, _ = train(tmp_path, tmp_path / "nothing")
    assert proc.returncode == 2
    assert "kaggle competitions download -c titanic" in proc.stderr and "--demo" in proc.stderr
    assert not (tmp_path / "subs").exists()


def test_config_typo_is_one_line_error(tmp_path, titanic_demo):
    proc, _ = train(tmp_path, titanic_demo, "--set", "train.epoch=3")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    assert "unknown key 'epoch'" in proc.stderr and "Traceback" not in proc.stderr
