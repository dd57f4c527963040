"""Run folders written by an older kit still load: predict.py and ensemble.py on them today.

The layout below is the one commit 00b660e wrote (the last commit before kit/ was grouped into
wings, issue 29), read from an xgb run, a linear run and their soft ensemble made there on the
Titanic demo data (2 folds x 2 repeats): every file of those folders, each parquet's and csv's
columns, each json's keys, config.toml's sections and keys. No run folder is kept in the repo
(data and model files stay out of it): the test trains the same runs with today's kit, then
ages a copy to that layout (drops every file, column and key the old kit did not write) and
checks that predict.py and ensemble.py give the same predictions and blend from the aged copy
as from today's folders. A loader that starts to need something new fails here.
"""

from __future__ import annotations

import json
import re
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

SAMPLE = "gender_submission.csv"
SPLIT = "333a3cd752ea"  # the split 00b660e stored for this demo data and cv settings
CV = ["--set", "cv.n_splits=2", "--set", "cv.repeats=2"]

# 00b660e's run folders, read from them (tests/test_legacy_run.py's docstring)
OLD_CONFIG = {'competition': ['description', 'kaggle', 'metric', 'problem', 'slug', 'task'],
 'cv': ['bins', 'gap', 'group', 'n_splits', 'repeats', 'seed', 'strategy', 'time'],
 'data': ['classes', 'csv_cache_mb', 'dtypes', 'id', 'out_of_core', 'out_of_core_mb',
          'out_of_core_xgb_mb', 'params', 'sample_submission', 'target', 'target_transform',
          'test', 'train'],
 'ensemble': ['fold_vote'],
 'features': ['categorical', 'exclude', 'fold_hook', 'log1p_skewed', 'name', 'numeric',
              'params', 'scaling', 'target_encode', 'text'],
 'image': ['augment', 'channels', 'cutmix', 'max_bad_fraction', 'mean', 'mix_prob', 'mixup',
           'predecode', 'size', 'std', 'tta', 'tta_shift'],
 'model': ['name', 'params', 'pretrained', 'weights'],
 'optim': ['backbone_lr_mult', 'huber_delta', 'label_smoothing', 'loss', 'lr',
           'weight_decay'],
 'submission': ['id', 'kind', 'target'],
 'track': ['entity', 'project', 'wandb'],
 'train': ['accum_steps', 'amp', 'batch_size', 'channels_last', 'clip_grad', 'compile',
           'dask_scheduler', 'deterministic', 'device', 'device_data', 'ema_decay',
           'epochs', 'freeze_epochs', 'max_steps_per_epoch', 'max_time', 'min_delta',
           'min_delta_mode', 'min_lr', 'monitor', 'num_threads', 'num_workers', 'patience',
           'plateau_factor', 'plateau_patience', 'scheduler', 'seed', 'warmup_epochs']}
OLD_FILES = {'ensemble': {'ensemble.json': ['argv', 'classes', 'coefficients', 'correlation',
                                'ensemble_json', 'fold_weights', 'git_commit', 'heatmap',
                                'members', 'method', 'metric', 'mode', 'objective',
                                'objective_cv', 'oof_score', 'oof_score_cv',
                                'oof_score_in_sample', 'problem', 'run_dir',
                                'run_submission', 'settings', 'started', 'submission',
                                'weights', 'weights_source'],
              'oof.parquet': ['id', 'fold', 'target', 'p_0', 'p_1'],
              'scores.json': ['classes', 'folds', 'mean', 'metric', 'mode', 'oof',
                              'problem', 'split', 'std'],
              'submission.csv': ['PassengerId', 'Survived'],
              'test_pred.parquet': ['id', 'p_0', 'p_1']},
 'linear': {'fold*/done.json': ['model_file', 'seconds', 'train_rows'],
            'fold*/model.skops': None,
            'fold*/oof.parquet': ['id', 'fold', 'repeat', 'target', 'p_0', 'p_1', '_row'],
            'fold*/preprocessors.json': ['categorical', 'numeric'],
            'fold*/test_pred.parquet': ['id', 'p_0', 'p_1'],
            'folds.csv': ['id', 'fold', 'fold_r1', 'split'],
            'oof.parquet': ['id', 'fold', 'target', 'p_0', 'p_1'],
            'run.json': ['argv', 'cv_seed', 'data_dir', 'demo', 'deterministic', 'device',
                         'folds', 'git_commit', 'hooks', 'libraries', 'max_time', 'python',
                         'seed', 'started', 'threads', 'torch', 'world_size'],
            'scores.json': ['classes', 'fold_info', 'folds', 'mean', 'metric', 'mode',
                            'n_folds_trained', 'n_splits', 'oof', 'oof_rows', 'problem',
                            'repeat_means', 'repeats', 'seconds', 'split', 'std'],
            'submission.csv': ['PassengerId', 'Survived'],
            'test_pred.parquet': ['id', 'p_0', 'p_1']},
 'xgb': {'fold*/done.json': ['best_iteration', 'model_file', 'rounds', 'seconds',
                             'stop_reason', 'threads', 'train_rows'],
         'fold*/history.csv': ['round', 'valid_logloss'],
         'fold*/importance.csv': ['feature', 'importance', 'type'],
         'fold*/model.ubj': None,
         'fold*/oof.parquet': ['id', 'fold', 'repeat', 'target', 'p_0', 'p_1', '_row'],
         'fold*/preprocessors.json': ['categorical', 'numeric'],
         'fold*/test_pred.parquet': ['id', 'p_0', 'p_1'],
         'folds.csv': ['id', 'fold', 'fold_r1', 'split'],
         'importance.csv': ['feature', 'mean', 'std', 'folds', 'type'],
         'oof.parquet': ['id', 'fold', 'target', 'p_0', 'p_1'],
         'run.json': ['argv', 'cv_seed', 'data_dir', 'demo', 'deterministic', 'device',
                      'folds', 'git_commit', 'hooks', 'libraries', 'max_time', 'python',
                      'seed', 'started', 'threads', 'torch', 'world_size'],
         'scores.json': ['classes', 'fold_info', 'folds', 'mean', 'metric', 'mode',
                         'n_folds_trained', 'n_splits', 'oof', 'oof_rows', 'problem',
                         'repeat_means', 'repeats', 'seconds', 'split', 'std'],
         'submission.csv': ['PassengerId', 'Survived'],
         'test_pred.parquet': ['id', 'p_0', 'p_1']}}


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args],
                          capture_output=True, text=True, timeout=300, check=False)


def summary_of(tmp: Path, name: str, *args: str) -> dict:
    path = tmp / f"{name}.json"
    done = script(name, *args, "--summary-json", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Today's xgb and linear runs and their soft ensemble, as 00b660e's were made."""
    tmp = tmp_path_factory.mktemp("legacy")
    data = tmp / "titanic-demo"
    load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")(data)
    where = ["--comp", "titanic", "--data", str(data), "--runs", str(tmp / "runs"),
             "--submissions", str(tmp / "subs")]
    runs = {"xgb": Path(summary_of(tmp, "train.py", *where, *CV)["run_dir"]),
            "linear": Path(summary_of(tmp, "train.py", *where, *CV,
                                      "--set", "model.name=linear")["run_dir"])}
    runs["ensemble"] = Path(summary_of(tmp, "ensemble.py", *where, str(runs["xgb"]),
                                       str(runs["linear"]))["run_dir"])
    return {"data": data, "runs": runs}


# names renamed since (issue 32: one meaning per word), per file: today's -> 00b660e's; the
# aged copy holds the old names, so loading it proves the migration
RENAMED = {"scores.json": {"fold_scores": "folds"}, "run.json": {"fits": "folds"},
           "importance.csv": {"n_folds": "folds"}}


def old_name(path: Path, run: Path) -> str:
    return re.sub(r"^fold\d+/", "fold*/", str(path.relative_to(run)))


def age(run: Path, layout: dict) -> None:
    """`run` cut down to what the old kit wrote: other files and folders removed, parquet and
    csv files to their old columns, json files to their old keys, config.toml to its old
    keys (every section's table of one key per line, as the kit writes it)."""
    for path in sorted(run.rglob("*"), reverse=True):
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
            continue
        old = layout.get(old_name(path, run), "gone")
        renamed = RENAMED.get(path.name, {})
        if path.name == "config.toml":
            path.write_text(_old_config(path.read_text()))
        elif old == "gone":
            path.unlink()
        elif path.suffix == ".parquet":
            pd.read_parquet(path)[old].to_parquet(path, index=False)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns=renamed)
            frame[old].to_csv(path, index=False)
        elif path.suffix == ".json":
            kept = {renamed.get(k, k): v for k, v in json.loads(path.read_text()).items()}
            path.write_text(json.dumps({k: v for k, v in kept.items() if k in old}))


FREE_TABLES = ("dry_run", "demo", "cpu", "gpu", "mps", "tune")  # kept as they are


def _old_config(text: str) -> str:
    """config.toml less the sections and keys 00b660e's config did not have; train.fold_vote
    back in the [ensemble] section it had then."""
    vote = re.search(r"^fold_vote = .*$", text, flags=re.M)
    out, keep, section = [], True, None
    for line in [*text.splitlines(), "[ensemble]", vote.group(0)]:
        header = re.fullmatch(r"\[([^\]]+)\]", line)
        if header:
            top, _, sub = header.group(1).partition(".")
            keep = top in FREE_TABLES or (top in OLD_CONFIG and (
                not sub or sub.split(".")[0] in OLD_CONFIG[top]))
            section = top if not sub and top in OLD_CONFIG else None
        elif section and "=" in line and line.split("=", 1)[0].strip() not in OLD_CONFIG[section]:
            continue
        if keep:
            out.append(line)
    return "\n".join(out) + "\n"


@pytest.fixture
def aged(world, tmp_path) -> dict:
    """A copy of today's runs root, each run aged to 00b660e's layout."""
    root = world["runs"]["xgb"].parent.parent
    shutil.copytree(root, tmp_path / "runs")
    runs = {role: tmp_path / "runs" / "titanic" / path.name
            for role, path in world["runs"].items()}
    for role, run in runs.items():
        age(run, OLD_FILES[role])
    return runs


@pytest.mark.parametrize("role", ["xgb", "linear", "ensemble"])
def test_today_writes_every_file_column_and_key_the_old_kit_did(world, role):
    """The other way round: today's loaders read folders of the old layout, and today's
    writers still write all of it (run folders stay readable by the kit of last month)."""
    run = world["runs"][role]
    written = {old_name(p, run): p for p in run.rglob("*") if p.is_file()}
    assert sorted(set(OLD_FILES[role]) - set(written)) == []
    for name, old in OLD_FILES[role].items():
        path = written[name]
        now = (list(pd.read_parquet(path).columns) if path.suffix == ".parquet" else
               list(pd.read_csv(path, nrows=0).columns) if path.suffix == ".csv" else
               list(json.loads(path.read_text())) if path.suffix == ".json" else None)
        if old is not None:
            today = {v: k for k, v in RENAMED.get(Path(name).name, {}).items()}
            old = {today.get(k, k) for k in old}
            assert old <= set(now), (name, sorted(old - set(now)))
    assert json.loads((run / "scores.json").read_text())["split"] == SPLIT


def test_aging_drops_what_the_old_kit_did_not_write(aged):
    """The aged copy is the old layout: the check above has something to bite on."""
    config = (aged["xgb"] / "config.toml").read_text()
    assert "refit" not in config and "weight = " not in config
    scores = json.loads((aged["xgb"] / "scores.json").read_text())
    assert set(scores) == set(OLD_FILES["xgb"]["scores.json"]) and "folds" in scores
    run_json = json.loads((aged["xgb"] / "run.json").read_text())
    assert "[ensemble]\nfold_vote = " in config and "fits" not in run_json and "folds" in run_json


@pytest.mark.parametrize("role", ["xgb", "linear"])
def test_predict_on_an_old_run_gives_its_test_predictions(role, aged, world, tmp_path):
    run = aged[role]
    summary = summary_of(tmp_path, "predict.py", "--run", str(run), "--data", str(world["data"]))
    assert summary["fold_dirs"] == ["fold0", "fold1", "fold2", "fold3"]  # 2 folds x 2 repeats
    ours, theirs = (pd.read_parquet(p) for p in (summary["test_pred"], run / "test_pred.parquet"))
    assert list(ours.columns) == list(theirs.columns) == ["id", "p_0", "p_1"]
    assert (ours["id"].to_numpy() == theirs["id"].to_numpy()).all()
    assert np.allclose(ours[["p_0", "p_1"]], theirs[["p_0", "p_1"]], atol=1e-9)
    validate_file(summary["submission"], world["data"] / SAMPLE)
    pd.testing.assert_frame_equal(pd.read_csv(summary["submission"]),
                                  pd.read_csv(run / "submission.csv"))


def test_predict_on_an_old_ensemble_names_its_submission_and_the_blend_command(aged, world,
                                                                               capsys):
    run = aged["ensemble"]
    # refused before the slow imports (an ensemble has no checkpoints): in-process is cheap
    assert run_script(predict_main, ["--run", str(run), "--data", str(world["data"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --run {run} is an ensemble (ensemble.json)"), err
    assert f"its submission is already {run / 'submission.csv'}" in err
    assert "`python scripts/ensemble.py --comp titanic " in err and "--method soft`" in err
    assert aged["xgb"].name in err and aged["linear"].name in err


def test_ensemble_of_two_old_runs_gives_the_old_blend(aged, world, tmp_path):
    old = aged["ensemble"]
    recorded = json.loads((old / "ensemble.json").read_text())
    summary = summary_of(tmp_path, "ensemble.py", "--comp", "titanic", str(aged["xgb"]),
                         str(aged["linear"]), "--runs", str(old.parent.parent),
                         "--submissions", str(tmp_path / "subs"), "--data", str(world["data"]))
    assert summary["method"] == recorded["method"] == "soft" and summary["warnings"] == []
    assert summary["oof_score"] == pytest.approx(recorded["oof_score"], abs=1e-12)
    new = Path(summary["run_dir"])
    for name in ("oof.parquet", "test_pred.parquet"):
        ours, theirs = pd.read_parquet(new / name), pd.read_parquet(old / name)
        numbers = [c for c in theirs.columns if c.startswith("p_")]
        assert (ours["id"].to_numpy() == theirs["id"].to_numpy()).all(), name
        assert np.allclose(ours[numbers], theirs[numbers], atol=1e-9), name
    pd.testing.assert_frame_equal(pd.read_csv(summary["submission"]),
                                  pd.read_csv(old / "submission.csv"))


def test_resume_of_an_old_finished_run_reads_its_old_names(aged, world, tmp_path):
    """run.json's "folds" (now "fits"), config.toml's [ensemble] fold_vote (now
    train.fold_vote) and scores.json's "folds" (now "fold_scores") are read as they meant."""
    run = aged["xgb"]
    old = json.loads((run / "scores.json").read_text())
    summary = summary_of(tmp_path, "train.py", "--resume", str(run),
                         "--submissions", str(tmp_path / "subs"))
    assert summary["cv"]["fold_scores"] == pytest.approx(old["folds"], abs=1e-12)
    assert json.loads((run / "scores.json").read_text())["fold_scores"] == \
        summary["cv"]["fold_scores"]
