"""The workflow after `train.py --demo` on demo data alone (issue 32 item 3): ensemble.py,
submit.py, predict.py and kernel.py take --demo or find the demo data the runs were trained
on, never reach Kaggle, and each "no data" error names the command that works.

Scripts run in subprocesses with KIT_DATA_ROOT at an empty tmp folder (no real Titanic data)
and tests/fake_kaggle/kaggle first on PATH, logging any call. runs.py's --demo is tested in
tests/test_runs_table.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

FAKE = Path(__file__).parent / "fake_kaggle"


def script(world: Path, name: str, *args: str, **env: str):
    """scripts/<name> with the world's roots; returns (process, summary or None)."""
    out = world / f"{name}.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args, "--summary-json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=world,
        env={**os.environ, "OMP_NUM_THREADS": "1", "KIT_DATA_ROOT": str(world / "data"),
             "KIT_RUNS_ROOT": str(world / "runs"), "KIT_SUBMISSIONS_ROOT": str(world / "subs"),
             "PATH": f"{FAKE}{os.pathsep}{os.environ['PATH']}", "HOME": str(world),
             "FAKE_KAGGLE_LOG": str(world / "calls.jsonl"), "FAKE_KAGGLE_MODE": "ok",
             "KAGGLE_USERNAME": "", **env})
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def kaggle_calls(world: Path) -> list:
    log = world / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two `train.py --demo` runs (linear, gbdt; one 5-fold split) and their ensemble, made
    with no --data anywhere: demo data lands in data/titanic-demo as a new user's would."""
    tmp = tmp_path_factory.mktemp("demo_world")
    runs = []
    for model in ("linear", "gbdt"):
        proc, summary = script(tmp, "train.py", "--comp", "titanic", "--demo",
                               "--set", f"model.name={model}", "--set", "cv.repeats=1")
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(summary["run_dir"])
    proc, blend = script(tmp, "ensemble.py", "--comp", "titanic", *runs)
    assert proc.returncode == 0, proc.stderr[-2000:]  # before: no data/titanic: exit 2
    return tmp, runs, blend


def test_ensemble_finds_the_demo_data_of_demo_trained_members(world):
    tmp, _, blend = world
    assert blend["demo"] and blend["run_dir"].endswith("_ensemble_soft_demo")
    assert not (tmp / "data" / "titanic").exists()  # real data was never needed


def test_ensemble_takes_demo(world):
    tmp, runs, _ = world
    proc, blend = script(tmp, "ensemble.py", "--comp", "titanic", *runs, "--demo",
                         "--method", "weighted")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert blend["demo"] and "DEMO DATA" in proc.stdout


def test_submit_demo_validates_and_never_submits(world):
    tmp, _, blend = world
    proc, summary = script(tmp, "submit.py", "--comp", "titanic", "--file",
                           blend["submission"], "-m", "demo blend", "--demo")
    assert proc.returncode == 0, proc.stderr
    assert summary["submitted"] is False and summary["demo"] is True
    assert "not submitted" in proc.stdout
    assert kaggle_calls(tmp) == []  # the fake `kaggle` was never run


def test_submit_without_data_names_the_demo_command(world):
    tmp, _, blend = world
    proc, _ = script(tmp, "submit.py", "--comp", "titanic", "--file", blend["submission"],
                     "-m", "x", "--force", "--dry-run")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no train.csv in" in proc.stderr and "--data DIR" in proc.stderr
    assert f"python scripts/submit.py --comp titanic --file {blend['submission']}" in proc.stderr
    assert "--demo" in proc.stderr and kaggle_calls(tmp) == []


def test_train_without_data_names_its_demo_command(world):
    tmp, _, _ = world
    proc, _ = script(tmp, "train.py", "--comp", "titanic")
    assert proc.returncode == 2
    assert "`python scripts/train.py --comp titanic --demo`" in proc.stderr


def test_predict_on_an_ensemble_points_at_its_submission_and_ensemble_py(world):
    """Before: it advised `train.py --resume ENSEMBLE_DIR`, which fails."""
    tmp, runs, blend = world
    proc, _ = script(tmp, "predict.py", "--run", blend["run_dir"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "is an ensemble" in proc.stderr and "--resume" not in proc.stderr
    assert str(Path(blend["run_dir"]) / "submission.csv") in proc.stderr
    assert f"python scripts/ensemble.py --comp titanic {' '.join(runs)} --method soft" \
        in proc.stderr
    assert not (Path(blend["run_dir"]) / "predict").exists()


def test_kernel_demo_builds_without_a_user_and_never_pushes(world):
    tmp, runs, _ = world
    proc, summary = script(tmp, "kernel.py", "--comp", "titanic", "--demo",
                           "--out", str(tmp / "kernel"))
    assert proc.returncode == 0, proc.stderr
    assert summary["demo"] and summary["kernel_id"].startswith("kit-demo/")
    assert (tmp / "kernel" / "kernel-metadata.json").is_file()
    refused = [script(tmp, "kernel.py", "--comp", "titanic", "--demo", "--push",
                      "--out", str(tmp / "k2")),
               script(tmp, "kernel.py", "--comp", "titanic", "--mode", "predict", "--run",
                      runs[0], "--user", "me", "--push", "--out", str(tmp / "k3"),
                      "--dataset-out", str(tmp / "ds"))]
    for proc, _ in refused:
        assert proc.returncode == 2 and proc.stderr.startswith("error: --push:"), proc.stderr
    assert not (tmp / "k2").exists() and not (tmp / "k3").exists()
    assert kaggle_calls(tmp) == []
