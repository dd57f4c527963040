"""scripts/tune.py: Optuna trials as CV runs on the shared folds, on a journal file.

A small noise competition (tests/test_fold_contract.py) keeps each trial to a second: two
processes share one study, a SIGKILLed study resumes and retries the killed trial, and bad
search spaces or storage URLs are one-line errors. A study is its own (kit/tuning/key.py):
other data or another space is another study, a trial never reports folds it did not
train, processes sample apart, and --jobs J runs J processes on one study.
"""

from __future__ import annotations

import json
import os
import shutil
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


def study(world: Path, name: str | None = None):
    """Study `name`, or the one study under runs/noise/tune/."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    tune = world / "runs" / "noise" / "tune"
    if name is None:
        (journal,) = tune.glob("*.journal")
        name = journal.stem
    path = tune / f"{name}.journal"
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
    (best_toml,) = (world / "runs" / "noise" / "tune").glob("gbdt-*/best.toml")
    best = best_toml.read_text()
    assert best.startswith("[model.params.gbdt]") and "learning_rate =" in best


def test_a_killed_study_resumes_and_retries_the_killed_trial(world):
    proc = subprocess.Popen(tune_cmd(world, "--trials", "4"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env(world))
    tune = world / "runs" / "noise" / "tune"
    deadline = time.monotonic() + 120
    while not list(tune.glob("gbdt-*/trial_0001")):
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
    from kit.tuning.study import DEFAULT_SPACES, search_space

    for model, space in DEFAULT_SPACES.items():
        assert list(search_space(Config(), model)) == list(space), model


# --- a study is its own ------------------------------------------------------------------

def fixed_space(world: Path, learning_rate: float) -> None:
    """[tune.gbdt] with one choice per parameter: a trial's score is then a function of the
    data and these values alone, and it trains in a second."""
    config = world / "comps" / "noise" / "config.toml"
    config.write_text(config.read_text().split("\n[tune.gbdt]")[0] + f"""
[tune.gbdt]
learning_rate = {{choices = [{learning_rate}]}}
max_iter = {{choices = [20]}}
max_depth = {{choices = [3]}}
min_samples_leaf = {{choices = [5]}}
l2_regularization = {{choices = [0.1]}}
""")


def tune_here(world: Path, *extra: str, data: str = "data") -> dict:
    """scripts/tune.py in this process (no interpreter start-up); returns its summary."""
    from scripts_tune import main

    argv = tune_cmd(world, "--set", "competition.metric=auc", *extra)[2:]
    argv[argv.index("--data") + 1] = str(world / data)
    summary = world / "summary.json"
    summary.unlink(missing_ok=True)
    assert run_script(main, [*argv, "--summary-json", str(summary)]) == 0
    return json.loads(summary.read_text())


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_fresh_study_after_the_journal_is_removed_trains_its_trials(world):
    # the audit: trial folders named by number alone, and a trial's fold*/done.json read
    # back, so a fresh study with other parameters reported the old study's fold scores
    fixed_space(world, 0.3)
    first = tune_here(world, "--trials", "1", "--study", "s")
    tune = world / "runs" / "noise" / "tune"
    old_trial = tune / "s" / "trial_0000"
    before = files(old_trial)
    (tune / "s.journal").unlink()
    fixed_space(world, 0.01)
    second = tune_here(world, "--trials", "1", "--study", "s")
    assert second["best"]["params"]["learning_rate"] == 0.01
    assert second["best"]["value"] != first["best"]["value"]  # trained, not read back
    assert files(old_trial) == before  # the old trial's folder is left as it was
    (new_trial,) = [p for p in (tune / "s").glob("trial_0000*") if p != old_trial]
    assert study(world, "s").trials[0].user_attrs["run_dir"] == new_trial.name
    scores = json.loads((new_trial / "scores.json").read_text())
    assert scores["mean"] == second["best"]["value"]


def test_a_study_on_other_data_is_another_study_never_mixed(world, capsys):
    # the audit: `--data data/titanic-demo` and then the real data shared one study
    from scripts_tune import main

    fixed_space(world, 0.1)
    noise_data(world / "other", n=300, seed=1)  # other content, same layout
    on_data = tune_here(world, "--trials", "1")
    on_other = tune_here(world, "--trials", "1", data="other")
    assert on_data["study"] != on_other["study"]
    assert len(study(world, on_data["study"]).trials) == 1
    assert len(study(world, on_other["study"]).trials) == 1
    # the same bytes at another path, extracted again (a new mtime), on another machine:
    # the same study, whose one trial is already done
    shutil.copytree(world / "data", world / "copy")
    os.utime(world / "copy" / "train.csv", (1, 1))
    again = tune_here(world, "--trials", "1", data="copy")
    assert again["study"] == on_data["study"] and again["trials"] == 1
    # a study named on the command line is refused on other data, and left as it was
    journal = world / "runs" / "noise" / "tune" / f"{on_data['study']}.journal"
    before = journal.read_bytes()
    capsys.readouterr()
    argv = tune_cmd(world, "--set", "competition.metric=auc", "--trials", "2",
                    "--study", on_data["study"])[2:]
    argv[argv.index("--data") + 1] = str(world / "other")
    assert run_script(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: study ") and len(err.strip().splitlines()) == 1, err
    for fragment in (str(journal), "other data", "--study NAME"):
        assert fragment in err, err
    assert journal.read_bytes() == before


def test_another_search_space_is_another_study(world):
    fixed_space(world, 0.1)
    first = tune_here(world, "--trials", "1")
    fixed_space(world, 0.2)
    second = tune_here(world, "--trials", "1")
    assert first["study"] != second["study"]
    assert second["best"]["params"]["learning_rate"] == 0.2


def test_processes_sharing_a_study_propose_different_first_trials(world):
    # each process seeds its sampler apart: TPE seeded alike proposes the same trials
    config = world / "comps" / "noise" / "config.toml"
    config.write_text(config.read_text() + "\n[tune.gbdt]\nmax_iter = {choices = [20]}\n")
    for trials in ("1", "2"):  # one process's first trial, then another process's
        done = subprocess.run(tune_cmd(world, "--trials", trials), capture_output=True,
                              text=True, env=env(world), timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    first, second = study(world).trials
    assert first.user_attrs["pid"] != second.user_attrs["pid"]
    assert first.params != second.params
    assert first.user_attrs["sampler_seed"] != second.user_attrs["sampler_seed"]


def test_jobs_runs_processes_that_share_one_study(world):
    fixed_space(world, 0.1)
    summary = world / "jobs.json"
    done = subprocess.run(tune_cmd(world, "--trials", "4", "--jobs", "2", "--summary-json",
                                   str(summary)), capture_output=True, text=True,
                          env=env(world), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(summary.read_text())
    trials = study(world, result["study"]).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    pids = {job["pid"] for job in result["jobs"]}
    assert len(pids) == 2 and {t.user_attrs["pid"] for t in trials} == pids  # both trained
    assert {t.user_attrs["jobs"] for t in trials} == {2}  # KIT_JOBS reached each process
    assert "[job 0] trial " in done.stdout and "[job 1] trial " in done.stdout
    assert (Path(result["folder"]) / "best.toml").exists()


def test_demo_tunes_on_demo_data_in_a_study_of_its_own(tmp_path):
    from scripts_tune import main

    summary = tmp_path / "s.json"
    argv = ["--comp", "titanic", "--model", "gbdt", "--demo", "--data", str(tmp_path / "demo"),
            "--runs", str(tmp_path / "runs"), "--trials", "1", "--set", "cv.n_splits=2",
            "--set", "model.params.gbdt.max_iter=20", "--summary-json", str(summary)]
    assert run_script(main, argv) == 0
    result = json.loads(summary.read_text())
    assert (tmp_path / "demo" / "train.csv").exists()
    assert result["study"].startswith("gbdt-") and result["study"].endswith("_demo")
    assert result["trials"] == 1


@pytest.mark.parametrize("url", [
    "postgresql://kit:s3cret-pw@127.0.0.1:1/study",  # no driver installed, or no server
    "postgresql://kit:s3cret-pw@host:notaport/study",  # a URL SQLAlchemy cannot parse
    "mysql://kit:s3cret@pw@127.0.0.1:1/study",  # an unescaped @ in the password
])
def test_a_storage_password_is_never_echoed(world, capsys, url):
    from scripts_tune import main

    assert run_script(main, tune_cmd(world, "--trials", "1", "--storage", url)[2:]) == 2
    captured = capsys.readouterr()
    assert "s3cret" not in captured.err + captured.out, captured.err
    assert captured.err.startswith("error: --storage ") and "kit:***@" in captured.err


def test_mask_url():
    from kit.tuning.study import mask_url

    assert mask_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"  # no password
    assert mask_url("sqlite:///a/b.db") == "sqlite:///a/b.db"


def test_jobs_below_one_is_refused(world, capsys):
    from scripts_tune import main

    assert run_script(main, tune_cmd(world, "--trials", "1", "--jobs", "0")[2:]) == 2
    assert capsys.readouterr().err.startswith("error: --jobs 0: give 1 or more")
    assert not (world / "runs").exists()


def test_study_key_hashes_content_not_paths(tmp_path):
    from kit.config import Config, apply_overrides
    from kit.tuning.key import content_hash, scored_config

    (tmp_path / "a.csv").write_bytes(b"id,y\n1,0\n")
    (tmp_path / "b.csv").write_bytes(b"id,y\n1,0\n")
    known: dict = {}
    assert content_hash([tmp_path / "a.csv"], known) == content_hash([tmp_path / "b.csv"], known)
    (tmp_path / "b.csv").write_bytes(b"id,y\n1,1\n")
    assert content_hash([tmp_path / "a.csv"], {}) != content_hash([tmp_path / "b.csv"], {})
    space = {"learning_rate": {"low": 0.01, "high": 0.3}}
    base = apply_overrides(Config(), ["model.name=gbdt"])
    # speed and host settings, and the tuned parameters, do not change what a trial scores
    for same in ("train.device=cpu", "train.num_threads=3", "train.max_time=60",
                 "model.params.gbdt.learning_rate=0.5"):
        assert scored_config(apply_overrides(base, [same]), space) == scored_config(base, space)
    for other in ("train.seed=7", "cv.n_splits=3", "model.params.gbdt.max_depth=3"):
        assert scored_config(apply_overrides(base, [other]), space) != scored_config(base, space)


def test_a_study_from_before_studies_were_keyed_is_refused(world, capsys):
    # a study named by the model alone, as the kit named them before: its trials' data is
    # unknown, so joining it by name is refused and it is left as it was
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from scripts_tune import main

    journal = world / "runs" / "noise" / "tune" / "gbdt.journal"
    journal.parent.mkdir(parents=True)
    old = optuna.create_study(study_name="gbdt", direction="maximize",
                              storage=JournalStorage(JournalFileBackend(str(journal))))
    old.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    before = journal.read_bytes()
    capsys.readouterr()  # Optuna's log line of the creation
    assert run_script(main, tune_cmd(world, "--trials", "2", "--study", "gbdt")[2:]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: study 'gbdt' (") and len(err.strip().splitlines()) == 1, err
    assert all(f in err for f in (str(journal), "did not key studies", "--study NAME")), err
    assert journal.read_bytes() == before
