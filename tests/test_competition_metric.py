"""A competition brings its own metric (competitions/<slug>/metric.py) and it is used
everywhere a built-in is: fold and OOF scores, a network's early stopping, scores.json's
direction, the submission's form (ranked guesses under map@k), hill climbing, tuning's
direction, runs.py and the kernel's archive. Real runs in tmp folders (issue 30, items 1-2)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_script

from kit.config import load_config
from kit.errors import ConfigError
from kit.hooks import load_hook
from kit.metrics.registry import get_metric

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "competitions" / "playground-series-s5e6"
SLUG = "fert-custom"

# MAP@3 by hand, so the e2e run proves it was this file that scored, not the built-in
MAP3_FILE = '''
import numpy as np

NAME = "my_map3"
MODE = "max"
SCORES = "ranked"
K = 3


def score(labels, pred):
    """pred: (N, 3) class indices, best first."""
    total = 0.0
    for truth, guesses in zip(labels, pred):
        for rank, guess in enumerate(guesses):
            if guess == truth:
                total += 1 / (rank + 1)
    return total / len(labels)
'''


def make_competition(root: Path, metric_file: str | None, metric: str = "my_map3",
                     slug: str = SLUG) -> Path:
    """A copy of the MAP@3 demo competition under `root`, its metric set to `metric`."""
    folder = root / slug
    folder.mkdir(parents=True)
    shutil.copy(DEMO / "demo.py", folder / "demo.py")
    text = (DEMO / "config.toml").read_text().replace('metric = "map@3"', f'metric = "{metric}"')
    (folder / "config.toml").write_text(text)
    if metric_file is not None:
        (folder / "metric.py").write_text(metric_file)
    return folder


def script(name: str, tmp_path: Path, *args, fresh: bool = False):
    """scripts/<name> with --summary-json: in this process (conftest.run_in_process), or in
    a new interpreter when `fresh`; (its outcome, the summary or None)."""
    return run_script(name, *args, summary=tmp_path / f"{name}-summary.json", fresh=fresh,
                      env={"KIT_COMPETITIONS_ROOT": str(tmp_path / "comps")})


def train(tmp_path: Path, *extra, fresh: bool = False):
    return script("train.py", tmp_path, "--comp", SLUG, "--data", str(tmp_path / "data"),
                  "--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"),
                  "--set", "cv.n_splits=3", *extra, fresh=fresh)


@pytest.fixture
def world(tmp_path, monkeypatch):
    make_competition(tmp_path / "comps", MAP3_FILE)
    make_demo = load_hook(DEMO, "demo", "make_demo")
    make_demo(tmp_path / "data", seed=1, n_train=600, n_test=200)
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path / "comps"))
    return tmp_path


def test_a_map3_competition_with_its_own_metric_trains_blends_and_submits(world):
    lgbm, one = train(world, "--set", "model.params.lgbm.rounds=40")
    assert lgbm.returncode == 0, lgbm.stderr[-2000:]
    mlp, two = train(world, "--set", "model.name=mlp", "--set", "train.epochs=4",
                     "--set", "train.monitor=metric")  # early stopping on my_map3
    assert mlp.returncode == 0, mlp.stderr[-2000:]
    assert "fold 0: my_map3" in lgbm.stdout
    for summary in (one, two):
        run = Path(summary["run_dir"])
        scores = json.loads((run / "scores.json").read_text())
        assert (scores["metric"], scores["mode"]) == ("my_map3", "max")  # the direction, stored
        oof = pd.read_parquet(run / "oof.parquet")
        classes = scores["classes"]
        labels = pd.Index(classes).get_indexer(oof["target"].astype(str))
        proba = oof[[f"p_{c}" for c in classes]].to_numpy()
        # the file's loop and the built-in map@3 agree on the same top 3
        assert scores["oof"] == pytest.approx(get_metric("map@3")(labels, proba), rel=1e-12)
        submission = pd.read_csv(summary["submission"])
        assert list(submission.columns) == ["id", "Fertilizer Name"] and len(submission) == 200
        guesses = submission["Fertilizer Name"].str.split()
        assert (guesses.str.len() == 3).all() and guesses.map(lambda g: len(set(g)) == 3).all()
        assert set(guesses.explode()) <= set(classes)
    history = pd.read_csv(Path(two["run_dir"]) / "fold0" / "history.csv")
    assert "valid_metric" in history.columns and history["valid_metric"].notna().all()

    proc, blend = script("ensemble.py", world, "--comp", SLUG, one["run_dir"], two["run_dir"],
                         "--method", "hill", "--data", str(world / "data"),
                         "--runs", str(world / "runs"), "--submissions", str(world / "subs"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((Path(blend["run_dir"]) / "ensemble.json").read_text())
    assert report["metric"] == "my_map3" and report["mode"] == "max"
    assert report["objective"] == "my_map3"  # hill climbing climbed on the file's metric
    ranked = pd.read_csv(blend["submission"])["Fertilizer Name"].str.split()
    assert (ranked.str.len() == 3).all()

    proc, table = script("runs.py", world, "--comp", SLUG, "--runs", str(world / "runs"),
                         "--submissions", str(world / "subs"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    cvs = [row["cv"] for row in table["table"]]
    assert cvs == sorted(cvs, reverse=True) and len(cvs) == 3  # max: best first


def test_the_kernel_packs_the_metric_file_and_tuning_takes_its_direction(world):
    from kit.kaggle.kernel import _members
    from kit.metrics.competition import resolve_metric
    from kit.tuning.study import _mode

    names = [name for name, _ in _members(SLUG, "train")]
    assert f"competitions/{SLUG}/metric.py" in names
    (world / "comps" / SLUG / "metric.py").write_text(
        MAP3_FILE.replace('MODE = "max"', 'MODE = "min"'))
    cfg = load_config(world / "comps" / SLUG / "config.toml")
    assert resolve_metric(cfg).mode == _mode(cfg) == "min"


def test_runs_py_ranks_a_min_metric_lowest_first_and_never_guesses_a_direction(tmp_path):
    from kit.kaggle.leaderboard import run_table

    for name, cv, mode in (("a", 0.2, "min"), ("b", 0.1, "min"), ("c", 0.3, "min")):
        (tmp_path / name).mkdir()
        scores = {"metric": "my_loss", "mean": cv, "std": 0.0, "oof": cv}
        if name != "c":  # an old scores.json without "mode" and no config.toml beside it
            scores["mode"] = mode
        (tmp_path / name / "scores.json").write_text(json.dumps(scores))
    with pytest.raises(Exception, match=r"c/scores.json stores metric 'my_loss' without its mode"):
        run_table(tmp_path)
    (tmp_path / "c" / "scores.json").write_text(json.dumps(
        {"metric": "my_loss", "mode": "min", "mean": 0.3, "std": 0.0, "oof": 0.3}))
    assert run_table(tmp_path)["run"].tolist() == ["b", "a", "c"]


# --- bad input: one line naming the value, the file and the fix; exit 2; nothing written --


@pytest.mark.parametrize("metric_file, metric, message", [
    (MAP3_FILE.replace('MODE = "max"\n', ""), "my_map3",
     r"metric\.py defines no MODE.*MODE = \"max\" \(higher is better\) or MODE = \"min\""),
    (MAP3_FILE.replace('MODE = "max"', 'MODE = "up"'), "my_map3", r"MODE = 'up'; use \"max\""),
    (MAP3_FILE.replace('K = 3', 'K = 0'), "my_map3", r"K = 0; SCORES = \"ranked\" needs K"),
    (MAP3_FILE.replace('NAME = "my_map3"', 'NAME = "auc"'), "auc",
     r"NAME = 'auc' is a built-in metric's name"),
    (MAP3_FILE, "my_map5", r"'my_map5' is neither a built-in nor the metric 'my_map3'"),
    (None, "gini", r"unknown metric 'gini'; valid: .*map@k.*competitions/<slug>/metric\.py"),
    (None, "map@9", r"map@9' writes 9 guesses a row, but the target has 7 classes"),
])
def test_a_bad_metric_stops_the_run_with_exit_2_and_writes_nothing(tmp_path, metric_file,
                                                                   metric, message):
    import re

    make_competition(tmp_path / "comps", metric_file, metric)
    load_hook(DEMO, "demo", "make_demo")(tmp_path / "data", seed=1, n_train=300, n_test=50)
    proc, _ = train(tmp_path, fresh=metric == "gini")  # one row as a shell sees the status
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and re.search(message, error), error
    assert str(tmp_path / "comps" / SLUG) in error or metric_file is None
    assert not list(tmp_path.glob("subs/**/*.csv")) and not list(tmp_path.glob("runs/*/*/fold0"))


def test_a_metric_file_for_the_other_problem_kind_is_refused_naming_the_file(tmp_path,
                                                                             monkeypatch):
    from kit.metrics.competition import find_metric

    make_competition(tmp_path, MAP3_FILE.replace('SCORES = "ranked"', 'SCORES = "values"'))
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path))
    with pytest.raises(ConfigError, match=r"'my_map3' \(.*metric\.py\) scores a regression"):
        find_metric("my_map3", "classification", SLUG)


def test_a_labels_metric_file_gets_predicted_classes(tmp_path, monkeypatch):
    from kit.metrics.competition import find_metric

    labels_file = ('NAME = "hits"\nMODE = "max"\nSCORES = "labels"\n'
                   'def score(labels, pred):\n    return float((labels == pred).sum())\n')
    make_competition(tmp_path, labels_file, "hits")
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path))
    metric = find_metric("hits", "classification", SLUG)
    assert metric(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])) == 2.0
    assert find_metric("accuracy", "classification", SLUG).name == "accuracy"
