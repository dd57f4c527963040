"""A run folder is data and belongs to one run; a resume is exact or refuses (kit.run_folder,
kit.resume, kit.cli.train_main, kit.predict).

Real runs of scripts/train.py (the linear kind, 2 of 5 folds) on the Titanic demo data, in
a copy of competitions/titanic (KIT_COMPETITIONS_ROOT), so a test may edit its hooks.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, run_in_process, run_script

from kit.hooks import load_hook
from kit.run_folder import new_run_dir

LINEAR = ["--set", "model.name=linear"]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder but its cache/ (tables derived from the data in hand)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "cache" not in p.relative_to(folder).parts}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """comps/titanic (a copy of the real folder), data/ (its demo data)."""
    root = tmp_path_factory.mktemp("world")
    shutil.copytree(ROOT / "competitions" / "titanic", root / "comps" / "titanic")
    load_hook(root / "comps" / "titanic", "demo", "make_demo")(root / "data")
    return root


def script(world: Path, name: str, *args: str):
    """scripts/<name> in this process (conftest.run_in_process): its exit status, output."""
    return run_in_process(name, *args, env={"KIT_COMPETITIONS_ROOT": str(world / "comps")})


def train(world: Path, tmp: Path, *extra: str, fresh: bool = False
          ) -> tuple[subprocess.CompletedProcess, dict]:
    """train.py in this process, or in a new interpreter when `fresh` (its thread pools as a
    shell's run starts them)."""
    proc, summary = run_script("train.py", "--data", world / "data", "--runs", tmp / "runs",
                               "--submissions", tmp / "subs", *extra,
                               summary=tmp / "summary.json", fresh=fresh,
                               env={"KIT_COMPETITIONS_ROOT": str(world / "comps")})
    return proc, summary or {}


@pytest.fixture(scope="module")
def finished(world, tmp_path_factory) -> Path:
    """A finished 2-fold linear run; tests copy it before changing anything."""
    tmp = tmp_path_factory.mktemp("finished")
    proc, summary = train(world, tmp, "--comp", "titanic", "--fits", "2", *LINEAR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(summary["run_dir"])


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A copy of the finished run whose fold 1 looks unfinished (a resume would train it)."""
    copy = tmp_path / "runs" / "titanic" / finished.name
    shutil.copytree(finished, copy)
    (copy / "fold1" / "done.json").unlink()
    return copy


# --- a run folder belongs to one run ---------------------------------------------------------


def _make_at(parent: str, start, out) -> None:
    start.wait()
    out.put(str(new_run_dir(Path(parent), "linear", "raw")))


def test_two_processes_naming_a_run_in_the_same_second_get_two_folders(tmp_path):
    """Before: the name was only checked free, so both got one path (made later, exist_ok)."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_make_at, args=(str(tmp_path), start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    paths = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(60)
    assert len(paths) == 2 and all(Path(p).is_dir() for p in paths)
    # in one process, called twice before anything is written: still two folders
    first, second = new_run_dir(tmp_path, "x", "demo"), new_run_dir(tmp_path, "x", "demo")
    assert first != second and first.is_dir() and second.is_dir()
    assert second.name.endswith("_x_demo")  # the count goes on the time: the label stays last


def test_two_train_processes_started_together_write_two_runs(world, tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--comp", "titanic", "--data",
           str(world / "data"), "--runs", str(tmp_path / "runs"), "--submissions",
           str(tmp_path / "subs"), "--fits", "1", *LINEAR]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KIT_COMPETITIONS_ROOT": str(world / "comps")}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(2)]
    for p in procs:
        assert p.wait(300) == 0, p.stderr.read().decode()[-2000:]
    runs = sorted((tmp_path / "runs" / "titanic").glob("*_linear_*"))
    assert len(runs) == 2
    for folder in runs:  # each its own single fold, none borrowed
        assert sorted(p.name for p in folder.glob("fold[0-9]*")) == ["fold0"]
        assert json.loads((folder / "scores.json").read_text())["n_folds_trained"] == 1


def test_a_run_that_fails_before_its_first_fold_leaves_no_folder(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world / "data", data)
    (data / "gender_submission.csv").unlink()  # found missing after the run folder is made
    proc = script(world, "train.py", "--comp", "titanic", "--data", str(data), "--runs",
                  str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"), *LINEAR)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "removed" in proc.stdout and proc.stderr.startswith("error: ")
    assert not list((tmp_path / "runs" / "titanic").glob("*_linear_*"))


# --- a resume is exact or refuses ------------------------------------------------------------


@pytest.mark.parametrize("flags, named", [
    (["--set", "model.name=NO_SUCH_MODEL"], "--set"),
    (["--set", "train.bogus_key=1"], "--set"),
    (["--seed", "99"], "--seed"),
    (["--deterministic"], "--deterministic"),
    (["--profile", "none"], "--profile"),
    (["--dry-run"], "--dry-run"),
    (["--demo"], "--demo"),
    (["--comp", "house-prices-advanced-regression-techniques"], "--comp"),
    (["--fits", "1"], "--fits 1"),
])
def test_resume_refuses_what_would_change_the_run(world, run, tmp_path, flags, named):
    """Before: `--resume RUN --set model.name=NO_SUCH_MODEL --seed 99` exited 0."""
    before = tree(run)
    proc, _ = train(world, tmp_path, "--resume", str(run), *flags)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --") and named in line, line
    assert tree(run) == before
    assert not (tmp_path / "subs").exists()


def test_resume_applies_max_time_and_keeps_the_first_start(world, run, tmp_path):
    """Before: --max-time was ignored under --resume and run.json was rewritten."""
    first = json.loads((run / "run.json").read_text())
    proc, _ = train(world, tmp_path, "--resume", str(run), "--max-time", "0.001")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "time budget reached before fold 1" in proc.stdout
    info = json.loads((run / "run.json").read_text())
    assert {k: info[k] for k in first} == first  # the first start, argv and versions kept
    (resumed,) = info["resumes"]
    assert "--max-time" in resumed["argv"] and resumed["max_time"] == 0.001
    assert resumed["git_commit"] and resumed["libraries"] == first["libraries"]
    proc, summary = train(world, tmp_path, "--resume", str(run), "--fits", "3")  # larger: fine
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert summary["cv"]["fold_scores"][:1] == json.loads(
        (run / "scores.json").read_text())["fold_scores"][:1]
    assert len(summary["cv"]["fold_scores"]) == 3
    assert len(json.loads((run / "run.json").read_text())["resumes"]) == 2


def test_resume_refuses_data_that_gives_another_split(world, run, tmp_path):
    """Same ids, one target flipped: the finished fold trained on other data. Before: the
    split hash was never compared with folds.csv's, and the resume mixed the two."""
    data = tmp_path / "data"
    shutil.copytree(world / "data", data)
    train_csv = pd.read_csv(data / "train.csv")
    train_csv.loc[0, "Survived"] = 1 - train_csv.loc[0, "Survived"]
    train_csv.to_csv(data / "train.csv", index=False)
    before = tree(run)
    proc, _ = train(world, tmp_path, "--resume", str(run), "--data", str(data))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "folds.csv" in proc.stderr and "start a new run" in proc.stderr
    assert tree(run) == before


def test_a_new_run_never_reads_finished_folds_it_finds(world, finished, tmp_path, monkeypatch):
    """A fold folder left in a (reused) run folder is trained again unless --resume: before,
    run_cv read any fold*/done.json and reported its score as its own."""
    from kit.config import load_resolved
    from kit.pipeline import RunOptions, run_cv

    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(world / "comps"))
    folder = tmp_path / "reused"
    shutil.copytree(finished, folder)
    done = folder / "fold0" / "done.json"
    done.write_text(json.dumps({**json.loads(done.read_text()), "planted": True}))
    cfg = load_resolved(folder / "config.toml")
    opts = RunOptions(data_dir=world / "data", run_dir=folder, submissions_dir=tmp_path / "s",
                      device=torch.device("cpu"), first_fits=1, submit=False)
    run_cv(cfg, opts)
    assert "planted" not in json.loads(done.read_text())


# --- a run folder is data --------------------------------------------------------------------


EVIL = "from pathlib import Path\nPath({marker!r}).write_text('ran')\n"


@pytest.mark.parametrize("slug", ["../evil", "ABSOLUTE"])
def test_a_run_folder_naming_a_path_as_its_slug_runs_no_code(world, finished, tmp_path, slug):
    """predict.py and --resume refuse a slug that is no competition name, before any hook
    of the folder it points at is loaded. Before: predict executed ../evil/features.py."""
    evil = world / "evil"
    evil.mkdir(exist_ok=True)
    marker = tmp_path / "marker"
    shutil.copy(world / "comps" / "titanic" / "config.toml", evil / "config.toml")
    (evil / "features.py").write_text(EVIL.format(marker=str(marker)))
    slug = str(evil) if slug == "ABSOLUTE" else slug
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    config = run / "config.toml"
    config.write_text(config.read_text().replace('slug = "titanic"', f'slug = "{slug}"'))
    for argv in (["predict.py", "--run", str(run), "--data", str(world / "data")],
                 ["train.py", "--resume", str(run), "--runs", str(tmp_path / "runs")]):
        proc = script(world, *argv)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "is not a competition name" in proc.stderr and slug in proc.stderr
        assert not marker.exists()


def test_an_edited_hook_is_refused_by_predict_and_resume(world, finished, tmp_path):
    """run.json keeps the hooks' hashes. Before: predict ran today's features.py on an old
    run's checkpoints and gave other predictions without a word."""
    comps = tmp_path / "comps"
    shutil.copytree(world / "comps", comps)
    run = tmp_path / "runs" / "titanic" / finished.name
    shutil.copytree(finished, run)
    assert json.loads((run / "run.json").read_text())["hooks"]["features.py"]
    with open(comps / "titanic" / "features.py", "a") as fh:
        fh.write("\n# edited after the run\n")
    for argv in (["predict.py", "--run", str(run), "--data", str(world / "data")],
                 ["train.py", "--resume", str(run)]):
        proc = run_in_process(*argv, env={"KIT_COMPETITIONS_ROOT": str(comps)})
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "features.py changed since the run trained" in proc.stderr


def test_a_resume_takes_a_dask_address_from_the_command_line_only(world, run, tmp_path):
    config = run / "config.toml"
    config.write_text(config.read_text().replace('dask_scheduler = ""',
                                                 'dask_scheduler = "tcp://10.0.0.5:8786"'))
    before = tree(run)
    proc, _ = train(world, tmp_path, "--resume", str(run))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--dask-scheduler tcp://10.0.0.5:8786" in proc.stderr
    assert tree(run) == before


AUTO_CONFIG = '''
[competition]
task = "tabular"
metric = "accuracy"
[data]
id = "id"
target = "y"
[features]
numeric = "auto"
categorical = "auto"
[model]
name = "linear"
'''


def _auto_world(root: Path, extra_column: bool = False) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"id": range(1, n + 1), "a": rng.normal(size=n),
                          "b": rng.normal(size=n), "c": rng.choice(["p", "q", "r"], n)})
    if extra_column:  # a column both files gained since the run trained
        frame["d"] = rng.normal(size=n)
    y = (frame["a"] + (frame["c"] == "p") > 0.3).astype(int)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    frame.iloc[:180].assign(y=y[:180]).to_csv(data / "train.csv", index=False)
    frame.iloc[180:].to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": frame["id"][180:], "y": 0}).to_csv(data / "sample_submission.csv",
                                                           index=False)


def test_a_run_keeps_the_feature_lists_auto_resolved(tmp_path):
    """The run's config.toml names the columns "auto" chose, so predict.py builds the same
    features when the data (or the "auto" rule) would now choose others. Before: predict
    re-inferred "auto" and the checkpoint met another column list."""
    comps = tmp_path / "comps" / "auto-lists"
    comps.mkdir(parents=True)
    (comps / "config.toml").write_text(AUTO_CONFIG)
    _auto_world(tmp_path)
    env = {"KIT_COMPETITIONS_ROOT": str(comps.parent)}
    proc, summary = run_script("train.py", "--comp", "auto-lists", "--data", tmp_path / "data",
                               "--runs", tmp_path / "runs", "--submissions", tmp_path / "subs",
                               "--fits", "2", summary=tmp_path / "s.json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = Path(summary["run_dir"])
    saved = (run / "config.toml").read_text()
    assert 'numeric = ["a", "b"]' in saved and 'categorical = ["c"]' in saved
    _auto_world(tmp_path / "later", extra_column=True)
    proc, summary = run_script("predict.py", "--run", run, "--data", tmp_path / "later" / "data",
                               summary=tmp_path / "s.json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert summary["max_abs_diff_vs_run"] < 1e-9


@pytest.mark.parametrize("model, used", [("lgbm", {"lightgbm": 1}), ("gbdt", {"openmp": 1})])
def test_run_json_records_the_threads_the_fits_used(world, tmp_path, model, used):
    """Before: run.json said num_threads 1 (torch's budget) while LightGBM took every core;
    HistGradientBoosting (gbdt) now takes the same rule through threadpoolctl."""
    proc, summary = train(world, tmp_path, "--comp", "titanic", "--fits", "2",
                          "--set", f"model.name={model}", fresh=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((Path(summary["run_dir"]) / "run.json").read_text())
    assert info["threads"]["libraries"] == [used, used]  # a Titanic fold: one thread
