"""scripts/tune.py: Optuna trials as CV runs on the shared folds, on a journal file.

A small noise competition (tests/test_fold_contract.py) keeps each trial to a second: two
processes share one study, a SIGKILLed study resumes and retries the killed trial, and bad
search spaces or storage URLs are one-line errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from test_fold_contract import competition, noise_data

from kit.cli import run_script


@pytest.fixture
def world(tmp_path, monkeypatch):
    noise_data(tmp_path / "data", n=300)
    (tmp_path / "comps").mkdir()
    competition(tmp_path / "comps", "noise", numeric=["x"], encode=["lvl3"])
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path / "comps"))
    return tmp_path


def tune_cmd(world: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "tune.py"), "--comp", "noise", "--model",
            "gbdt", "--data", str(world / "data"), "--runs", str(world / "runs"), "--set",
            "cv.n_splits=3", *extra]


def env(world: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "KIT_COMPETITIONS_ROOT": str(world / "comps")}


def study(world: Path, name: str = "gbdt"):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = world / "runs" / "noise" / "tune" / f"{name}.journal"
    return optuna.load_study(study_name=name,
                             storage=JournalStorage(JournalFileBackend(str(path))))


def states(world: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in study(world).trials:
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


def test_two_processes_on_one_journal_finish_n_trials_in_total(world):
    procs = [subprocess.Popen(tune_cmd(world, "--trials", "6"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env(world))
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    trials = study(world).trials
    assert [t.number for t in trials] == list(range(6))  # distinct, none lost
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert {t.user_attrs["pid"] for t in trials} == {p.pid for p in procs}  # both worked
    # every trial ran on the competition's one stored split, and wrote no submission
    assert len(list((world / "runs" / "noise" / "splits").glob("*.csv"))) == 1
    assert not (world / "subs").exists() and not list(world.rglob("submission.csv"))
    best = (world / "runs" / "noise" / "tune" / "gbdt" / "best.toml").read_text()
    assert best.startswith("[model.params.gbdt]") and "learning_rate =" in best


def test_a_killed_study_resumes_and_retries_the_killed_trial(world):
    proc = subprocess.Popen(tune_cmd(world, "--trials", "4"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env(world))
    trial_dir = world / "runs" / "noise" / "tune" / "gbdt" / "trial_0001"
    deadline = time.monotonic() + 120
    while not trial_dir.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "trial 1 never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert states(world).get("RUNNING") == 1  # left behind by the killed process
    done = subprocess.run(tune_cmd(world, "--trials", "4"), capture_output=True, text=True,
                          env=env(world), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = study(world).trials
    killed = [t for t in trials if t.number == 1]
    assert killed[0].state.name == "FAIL"
    retried = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retried) == 1 and retried[0].params == killed[0].params
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4


@pytest.mark.parametrize("space, fragments", [
    ('learnin_rate = {low = 0.01, high = 0.1}', ("[tune.gbdt] learnin_rate", "learning_rate")),
    ('max_depth = {low = 8, high = 2, int = true}', ("low = 8 > high = 2", "swap them")),
])
def test_bad_search_spaces(world, capsys, space, fragments):
    from scripts_tune import main

    config = world / "comps" / "noise" / "config.toml"
    config.write_text(config.read_text() + f"\n[tune.gbdt]\n{space}\n")
    assert run_script(main, tune_cmd(world, "--trials", "1")[2:]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in err, err
    assert not (world / "runs" / "noise" / "tune").exists()


def test_an_unreachable_storage_is_a_clear_error(world, capsys):
    from scripts_tune import main

    url = f"sqlite:///{world}/no/such/folder/study.db"
    assert run_script(main, tune_cmd(world, "--trials", "1", "--storage", url)[2:]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --storage sqlite:///") and "reachable" in err
    assert json.dumps(err)  # one printable line


def test_every_shipped_search_space_names_its_builders_parameters():
    from kit.config import Config
    from kit.tuning import DEFAULT_SPACES, search_space

    for model, space in DEFAULT_SPACES.items():
        assert list(search_space(Config(), model)) == list(space), model
