"""Run folders written by an older kit still load: predict.py and ensemble.py on them today.

The fixture, tests/data/legacy_runs/runs/titanic/, holds two runs and their ensemble written
by commit 00b660e (the last commit before kit/ was grouped into wings, issue 29), made on the
Titanic demo data in a worktree of that commit (`git worktree add /tmp/legacy 00b660e`), with
cwd /tmp/legacy, PYTHONPATH=/tmp/legacy and OMP_NUM_THREADS=1:

    python scripts/train.py --comp titanic --demo --runs /tmp/legacy_out/runs \\
        --submissions /tmp/legacy_out/subs --data /tmp/legacy_out/titanic-demo \\
        --set cv.n_splits=2 --set cv.repeats=2                            # xgb, the default
    python scripts/train.py ... the same ... --set model.name=linear      # scikit-learn, skops
    python scripts/ensemble.py --comp titanic --runs /tmp/legacy_out/runs \\
        --submissions /tmp/legacy_out/subs --data /tmp/legacy_out/titanic-demo \\
        20261207-182747_xgb_wcg_demo 20261207-182755_linear_wcg_demo     # soft, the default

then runs/ copied here without the runs' cache/ folders and *.png plots (nothing reads them
back; they were 0.8 MB). The demo data is not kept: today's competitions/titanic/demo.py
writes the same bytes (DEMO_SHA256 below).

Each run's run.json keeps the sha256 of competitions/titanic/*.py and predict.py refuses a
run whose hooks changed since it trained: a change to those files requires making this
fixture again with the commands above (on the commit before the change).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from kit.cli import run_script
from kit.hooks import load_hook
from kit.predict import predict_main
from kit.submission import validate_file

FIXTURE = ROOT / "tests" / "data" / "legacy_runs"
XGB = "20261207-182747_xgb_wcg_demo"
LINEAR = "20261207-182755_linear_wcg_demo"
ENSEMBLE = "20261207-182801_ensemble_soft_demo"
SAMPLE = "gender_submission.csv"
DEMO_SHA256 = {  # the demo files 00b660e wrote (make_demo(folder), seed 0)
    "train.csv": "b3b2f84700fb3b7086046b7d2681583ac87178434a50d8487ec845c3b188ef4c",
    "test.csv": "c08297fd6b57aa880c96f0f4a8015638b2ba3f3dd524eea18dfb53744e271579",
    SAMPLE: "79cad75210517acb851e1091a66e10dd6d1be5cb7e10c1ce5acb0b1d8acf95c6",
}
REMAKE = ("make tests/data/legacy_runs again as tests/test_legacy_run.py's docstring says "
          "(commit 00b660e)")


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args],
                          capture_output=True, text=True, timeout=300, check=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The demo data the fixture's runs trained on, written by today's demo hook."""
    folder = tmp_path_factory.mktemp("data") / "titanic-demo"
    load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")(folder)
    now = {name: sha256(folder / name) for name in DEMO_SHA256}
    assert now == DEMO_SHA256, f"competitions/titanic/demo.py writes other files now: {REMAKE}"
    return folder


@pytest.fixture
def runs(tmp_path) -> Path:
    """A copy of the fixture's runs root (runs/titanic/<run>, runs/titanic/splits)."""
    shutil.copytree(FIXTURE / "runs", tmp_path / "runs")
    return tmp_path / "runs"


def failed(done: subprocess.CompletedProcess) -> str:
    """The assertion message of a script that failed; the hooks' refusal says what to do."""
    if "changed since the run trained" in done.stderr:
        return f"competitions/titanic hooks changed: {REMAKE}\n{done.stderr[-2000:]}"
    return done.stderr[-3000:]


@pytest.mark.parametrize("name", [XGB, LINEAR])
def test_predict_on_an_old_run_gives_its_test_predictions(name, runs, data, tmp_path):
    run = runs / "titanic" / name
    before = digests(run)
    summary_path = tmp_path / "predict.json"
    done = script("predict.py", "--run", str(run), "--data", str(data),
                  "--summary-json", str(summary_path))
    assert done.returncode == 0, failed(done)
    summary = json.loads(summary_path.read_text())
    assert summary["folds"] == ["fold0", "fold1", "fold2", "fold3"]  # 2 folds x 2 repeats

    ours, theirs = (pd.read_parquet(p) for p in (summary["test_pred"], run / "test_pred.parquet"))
    assert list(ours.columns) == list(theirs.columns) == ["id", "p_0", "p_1"]
    assert (ours["id"].to_numpy() == theirs["id"].to_numpy()).all()
    assert np.allclose(ours[["p_0", "p_1"]], theirs[["p_0", "p_1"]], atol=1e-6)

    validate_file(summary["submission"], data / SAMPLE)
    pd.testing.assert_frame_equal(pd.read_csv(summary["submission"]),
                                  pd.read_csv(run / "submission.csv"))
    after = digests(run)
    assert {k: v for k, v in after.items() if not k.startswith("predict/")} == before


def test_predict_on_an_old_ensemble_names_its_submission_and_the_blend_command(runs, data,
                                                                               capsys):
    run = runs / "titanic" / ENSEMBLE
    before = digests(run)
    # refused before the slow imports (an ensemble has no checkpoints): in-process is cheap
    assert run_script(predict_main, ["--run", str(run), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --run {run} is an ensemble (ensemble.json)"), err
    assert f"its submission is already {run / 'submission.csv'}" in err
    assert "`python scripts/ensemble.py --comp titanic " in err and "--method soft`" in err
    assert XGB in err and LINEAR in err
    validate_file(run / "submission.csv", data / SAMPLE)
    assert digests(run) == before


def blend(runs: Path, data: Path, tmp_path: Path, *members: Path) -> dict:
    """scripts/ensemble.py (soft) on `members`; returns its summary."""
    summary_path = tmp_path / "ensemble.json"
    done = script("ensemble.py", "--comp", "titanic", *map(str, members),
                  "--runs", str(runs), "--submissions", str(tmp_path / "subs"),
                  "--data", str(data), "--summary-json", str(summary_path))
    assert done.returncode == 0, failed(done)
    return json.loads(summary_path.read_text())


def test_ensemble_of_two_old_runs_gives_the_old_blend(runs, data, tmp_path):
    old = runs / "titanic" / ENSEMBLE
    recorded = json.loads((old / "ensemble.json").read_text())
    summary = blend(runs, data, tmp_path, runs / "titanic" / XGB, runs / "titanic" / LINEAR)
    assert summary["method"] == recorded["method"] == "soft"
    assert summary["oof_score"] == pytest.approx(recorded["oof_score"], abs=1e-12)
    assert [m["oof_score"] for m in summary["members"]] == pytest.approx(
        [m["oof_score"] for m in recorded["members"]], abs=1e-12)
    assert summary["warnings"] == []
    new = Path(summary["run_dir"])
    for name in ("oof.parquet", "test_pred.parquet"):
        ours, theirs = pd.read_parquet(new / name), pd.read_parquet(old / name)
        assert list(ours.columns) == list(theirs.columns), name
        numbers = [c for c in ours.columns if c.startswith("p_")]
        assert (ours["id"].to_numpy() == theirs["id"].to_numpy()).all(), name
        assert np.allclose(ours[numbers], theirs[numbers], atol=1e-9), name
    validate_file(summary["submission"], data / SAMPLE)
    pd.testing.assert_frame_equal(pd.read_csv(summary["submission"]),
                                  pd.read_csv(old / "submission.csv"))


def test_an_old_run_blends_with_a_run_trained_now_on_the_same_split(runs, data, tmp_path):
    train = tmp_path / "train.json"
    done = script("train.py", "--comp", "titanic", "--data", str(data), "--runs", str(runs),
                  "--submissions", str(tmp_path / "subs"), "--set", "model.name=linear",
                  "--set", "cv.n_splits=2", "--set", "cv.repeats=2", "--summary-json", str(train))
    assert done.returncode == 0, done.stderr[-3000:]
    now = Path(json.loads(train.read_text())["run_dir"])
    old = runs / "titanic" / XGB
    split = json.loads((old / "scores.json").read_text())["split"]
    assert json.loads((now / "scores.json").read_text())["split"] == split
    summary = blend(runs, data, tmp_path, old, now)  # refused on another split
    assert summary["warnings"] == []
    assert [m["run_dir"] for m in summary["members"]] == [str(old), str(now)]
    validate_file(summary["submission"], data / SAMPLE)
