"""scripts/runs.py: the runs of a competition as a table, joined with the Kaggle leaderboard
through the fake `kaggle` executable (tests/fake_kaggle/kaggle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_train

FAKE = Path(__file__).parent / "fake_kaggle"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two real Titanic runs (gbdt and linear) on the demo files passed as --data, so not
    marked demo, and one run of `train.py --demo` (marked: listed with --demo only)."""
    from kit.hooks import load_hook

    tmp = tmp_path_factory.mktemp("runs_table")
    load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")(tmp / "data")
    runs = []
    for model in ("gbdt", "linear"):
        proc, summary = run_train(tmp, tmp / "data", "--set", f"model.name={model}",
                                  "--set", "cv.repeats=1", fresh=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(summary)
    proc, demo = run_train(tmp, tmp / "demo_data", "--demo", "--set", "model.name=linear",
                           "--set", "cv.repeats=1", fresh=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tmp, runs, demo


def runs_script(tmp: Path, *args: str, env: dict | None = None):
    out = tmp / "table.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "runs.py"), "--comp", "titanic", "--runs",
         str(tmp / "runs"), "--submissions", str(tmp / "subs"), "--summary-json", str(out),
         *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": f"{FAKE}{os.pathsep}{os.environ['PATH']}",
             "HOME": str(tmp), **(env or {})})
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_the_table_lists_every_run_best_cv_first(world):
    tmp, runs, _ = world
    proc, summary = runs_script(tmp)
    assert proc.returncode == 0, proc.stderr
    table = summary["table"]
    assert [r["model"] for r in table] == [
        r["model"] for r in sorted(({"model": Path(s["run_dir"]).name.split("_")[1], "cv": s["cv"]["mean"]}
                                    for s in runs), key=lambda r: -r["cv"])]
    assert all(r["split"] == table[0]["split"] and r["seconds"] > 0 for r in table)
    assert {r["submission"] for r in table} == {Path(s["submission"]).name for s in runs}
    assert "cv_std" in proc.stdout and table[0]["run"] in proc.stdout


def test_lb_joins_submissions_by_file_name_and_plots_cv_against_lb(world):
    tmp, runs, _ = world
    names = [Path(s["submission"]).name for s in runs]
    listing = tmp / "submissions.csv"
    pd.DataFrame({"ref": [3, 2, 1], "fileName": [names[0], names[1], names[0]],
                  "date": ["2026-11-27 10:00:00"] * 3, "description": ["a", "b", "old a"],
                  "status": ["SubmissionStatus.COMPLETE"] * 3,
                  "publicScore": ["0.77511", "0.76555", "0.5"],
                  "privateScore": ["None", "None", "None"]}).to_csv(listing, index=False)
    proc, summary = runs_script(tmp, "--lb", env={"FAKE_KAGGLE_SUBMISSIONS": str(listing)})
    assert proc.returncode == 0, proc.stderr
    by_file = {r["submission"]: r for r in summary["table"]}
    assert by_file[names[0]]["public_lb"] == pytest.approx(0.77511)  # the newest of the two
    assert by_file[names[1]]["public_lb"] == pytest.approx(0.76555)
    assert by_file[names[0]]["private_lb"] is None
    plot = Path(summary["plot"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_trained_runs_are_listed_with_demo_only(world):
    """Before: runs.py had no --demo, and demo runs' CV was ranked among real ones."""
    tmp, runs, demo = world
    proc, summary = runs_script(tmp)
    assert proc.returncode == 0, proc.stderr
    assert Path(demo["run_dir"]).name not in {r["run"] for r in summary["table"]}
    assert summary["hidden"] == 1 and "runs.py --comp titanic --demo" in proc.stdout
    proc, summary = runs_script(tmp, "--demo")
    assert proc.returncode == 0, proc.stderr
    assert [r["run"] for r in summary["table"]] == [Path(demo["run_dir"]).name]
    assert summary["hidden"] == 2


def test_demo_with_lb_is_refused_and_an_empty_table_names_the_demo_command(world, tmp_path):
    tmp, _, _ = world
    proc, _ = runs_script(tmp, "--demo", "--lb")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --lb") and "drop --demo" in proc.stderr
    proc, summary = runs_script(tmp_path, "--demo")  # no runs at all
    assert proc.returncode == 0 and summary["table"] == []
    assert "python scripts/train.py --comp titanic --demo" in proc.stdout


def test_without_credentials_it_says_how_and_still_prints_the_table(world):
    tmp, runs, _ = world
    proc, summary = runs_script(tmp, "--lb", env={"FAKE_KAGGLE_MODE": "401"})
    assert proc.returncode == 0, proc.stderr
    assert "leaderboard not read" in proc.stderr and "KAGGLE_API_TOKEN" in proc.stderr
    assert len(summary["table"]) == 2 and "public_lb" not in summary["table"][0]
