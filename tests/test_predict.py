"""kit.predict / scripts/predict.py: a finished run's submission again, from its checkpoints.

Real runs of scripts/train.py on the Titanic demo data (gbdt, and a 2-epoch tabm and mlp,
2 folds; tabm's numeric bins come back from preprocessors.json),
shared by the module; predict must give the run's own test predictions without training,
leave the run folder as it was, and run inside an offline inference kernel.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from kit.cli import run_script
from kit.errors import CheckpointError
from kit.hooks import load_hook
from kit.predict import finished_folds, predict_main, predict_run
from kit.submission import validate_file


def script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "titanic"
    load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")(folder)
    return folder


def train(tmp: Path, data: Path, model: str) -> Path:
    """A finished 2-fold run of scripts/train.py with `model` (2 epochs for the mlp)."""
    done = script("train.py", "--comp", "titanic", "--data", str(data), "--fits", "2",
                  "--runs", str(tmp / "runs"), "--submissions", str(tmp / "subs"),
                  "--set", f"model.name={model}", "--set", "train.epochs=2",
                  "--summary-json", str(tmp / "train.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(json.loads((tmp / "train.json").read_text())["run_dir"])


@pytest.fixture(scope="module")
def gbdt_run(tmp_path_factory, data) -> Path:
    return train(tmp_path_factory.mktemp("gbdt"), data, "gbdt")


@pytest.fixture(scope="module")
def tabm_run(tmp_path_factory, data) -> Path:
    return train(tmp_path_factory.mktemp("tabm"), data, "tabm")


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, data) -> Path:
    return train(tmp_path_factory.mktemp("mlp"), data, "mlp")


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("model", ["gbdt", "tabm", pytest.param("mlp", marks=pytest.mark.slow)])
def test_predict_reproduces_the_runs_test_predictions(model, request, data, tmp_path):
    run = request.getfixturevalue(f"{model}_run")
    before = digests(run)
    summary_path = tmp_path / "predict.json"
    done = script("predict.py", "--run", str(run), "--data", str(data),
                  "--summary-json", str(summary_path))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["fold_dirs"] == ["fold0", "fold1"]

    ours, theirs = (pd.read_parquet(p) for p in (summary["test_pred"], run / "test_pred.parquet"))
    assert list(ours.columns) == list(theirs.columns) == ["id", "p_0", "p_1"]
    assert (ours["id"].to_numpy() == theirs["id"].to_numpy()).all()
    assert np.allclose(ours[["p_0", "p_1"]], theirs[["p_0", "p_1"]], atol=1e-6)
    assert summary["max_abs_diff_vs_run"] < 1e-6

    submission = Path(summary["submission"])
    assert submission == run / "predict" / "submission.csv"
    validate_file(submission, data / "gender_submission.csv")
    pd.testing.assert_frame_equal(pd.read_csv(submission), pd.read_csv(run / "submission.csv"))
    after = digests(run)
    assert {k: v for k, v in after.items() if not k.startswith("predict/")} == before


def test_predict_on_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    # scripts/predict.py is run_script(predict_main); in-process saves a torch import
    assert run_script(predict_main, ["--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --run ") and "not a run folder" in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "20240101-120000_gbdt_eng").mkdir()  # the runs/<comp>/ folder, not a run in it
    (tmp_path / "20240101-120000_gbdt_eng" / "config.toml").write_text("")
    assert run_script(predict_main, ["--run", str(tmp_path)]) == 2
    assert "the newest runs in it: 20240101-120000_gbdt_eng" in capsys.readouterr().err


def test_a_run_without_finished_folds_says_how_to_finish_it(tmp_path):
    (tmp_path / "config.toml").write_text("")
    (tmp_path / "fold0").mkdir()
    (tmp_path / "fold0" / "last.pt").write_bytes(b"")  # interrupted: no done.json
    with pytest.raises(CheckpointError, match=r"no finished fold.*--resume"):
        finished_folds(tmp_path)
    for k in (10, 2):
        (tmp_path / f"fold{k}").mkdir()
        (tmp_path / f"fold{k}" / "done.json").write_text("{}")
    assert [p.name for p in finished_folds(tmp_path)] == ["fold2", "fold10"]


def test_inside_a_kernel_predict_writes_to_kaggle_working(gbdt_run, data, tmp_path,
                                                         monkeypatch):
    """A run attached as a dataset (read-only /kaggle/input): nothing is written there."""
    import shutil

    run = tmp_path / "kaggle" / "input" / "my-run"
    shutil.copytree(gbdt_run, run)
    (tmp_path / "kaggle" / "working").mkdir()
    monkeypatch.setenv("KIT_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    before = digests(run)
    summary = predict_run(run, data=data)
    assert digests(run) == before
    working = tmp_path / "kaggle" / "working"
    assert summary["submission"] == str(working / "predict" / "submission.csv")
    assert summary["kaggle_submission"] == str(working / "submission.csv")
    pd.testing.assert_frame_equal(pd.read_csv(working / "submission.csv"),
                                  pd.read_csv(gbdt_run / "submission.csv"))


@pytest.mark.slow
def test_inference_kernel_predicts_offline_from_the_run_dataset(gbdt_run, tmp_path, monkeypatch):
    """scripts/kernel.py --mode predict: the run as a dataset, the real predict.py offline."""
    run = gbdt_run
    from test_kaggle import kaggle_tree, kernel_env, run_kernel

    from kit.kaggle.kernel import build_kernel

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = kaggle_tree(tmp_path)
    build = build_kernel("titanic", user="me", mode="predict", run=run, out=tmp_path / "k",
                         dataset_out=tmp_path / "ds")
    attached = root / "input" / build["dataset_slug"]  # Kaggle mounts the dataset read-only
    Path(build["dataset_dir"]).rename(attached)
    before = digests(root / "input")
    done = run_kernel(build["script"], kernel_env(tmp_path, root), root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "network.log").exists()
    assert digests(root / "input") == before
    final = root / "working" / "submission.csv"
    validate_file(final, root / "input" / "titanic" / "gender_submission.csv")
    # the kernel's demo data is the run's (same seed): the same submission as the run wrote
    pd.testing.assert_frame_equal(pd.read_csv(final), pd.read_csv(run / "submission.csv"))
    assert (root / "working" / "predict" / "test_pred.parquet").is_file()
