"""Text columns (kit/data/text.py, kit/data/columns.py, kit/tasks/tabular/task.py): features.text.

The rule that sends free text to features.text under "auto", the refusals, and real runs of
scripts/train.py and scripts/predict.py (linear: the sparse TF-IDF; lgbm: its SVD) on a
small review table in a tmp competitions root (KIT_COMPETITIONS_ROOT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from kit.config import load_config
from kit.data.columns import feature_lists, is_free_text
from kit.data.text import FILE, TextFeatures, TextJoined, load_text
from kit.errors import ConfigError, DataError
from kit.run_folder import read_folds
from kit.splits.folds import fold_rows
from kit.tasks.tabular.task import _load_sklearn, prepare

SLUG = "reviews"
CONFIG = """
[competition]
task = "tabular"
metric = "auc"

[data]
train = "train.csv"
test = "test.csv"
sample_submission = "sample_submission.csv"
id = "id"
target = "y"

[features]
numeric = "auto"
categorical = "auto"

[model.params.lgbm]
rounds = 60
"""
GOOD, BAD = ["excellent", "sturdy", "reliable"], ["broken", "refund", "flimsy"]
FILLER = [f"{a}{b}" for a in ("bo", "ka", "mi", "tu") for b in ("x", "lan", "rit", "po", "dem")]


def reviews(n: int, seed: int) -> pd.DataFrame:
    """id, x0, shop (4 levels), review (8-14 words; signal words move y; rows 2k and 2k + 1
    below 300 share a rare word, so some pairs fall in one fold's validation rows), y."""
    rng = np.random.default_rng(seed)
    score, texts = np.zeros(n), []
    for i in range(n):
        words = list(rng.choice(FILLER, rng.integers(8, 15)))
        good = rng.random() < 0.5
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(GOOD if good else BAD)))
        score[i] = 1.5 if good else -1.5
        if i < 300:
            words.append(f"rare{i // 2:03d}")
        texts.append(" ".join(words))
    x0 = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x0 + score)))).astype(int)
    return pd.DataFrame({"id": np.arange(n), "x0": x0, "shop": rng.choice(list("abcd"), n),
                         "review": texts, "y": y})


def write_world(root: Path, n_train: int = 500, n_test: int = 120, config: str = CONFIG) -> Path:
    (root / "comps" / SLUG).mkdir(parents=True, exist_ok=True)
    (root / "comps" / SLUG / "config.toml").write_text(config)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    frame = reviews(n_train + n_test, seed=0)
    frame.iloc[:n_train].to_csv(data / "train.csv", index=False)
    test = frame.iloc[n_train:].drop(columns="y")
    test.to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "y": 0.5}).to_csv(data / "sample_submission.csv", index=False)
    return root


def script(name: str, root: Path, *args) -> dict:
    summary = root / f"{name}-summary.json"
    summary.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args, "--summary-json", str(summary)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "KIT_COMPETITIONS_ROOT": str(root / "comps")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(summary.read_text()), "stdout": proc.stdout}


def train(root: Path, model: str) -> dict:
    return script("train.py", root, "--comp", SLUG, "--data", str(root / "data"), "--fits", "2",
                  "--runs", str(root / "runs"), "--submissions", str(root / "subs"),
                  "--set", f"model.name={model}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = write_world(tmp_path_factory.mktemp("text"))
    return root, {model: train(root, model) for model in ("linear", "lgbm")}


# --- the "auto" rule ------------------------------------------------------------------------

def test_free_text_rule_takes_long_or_spaced_distinct_text_and_leaves_codes():
    frame = reviews(200, seed=1)
    names = pd.Series([f"Smith{i}, Mr. John" for i in range(200)])  # short, distinct, spaced
    tickets = pd.Series([f"A/5 {i}" if i % 4 == 0 else str(1000 + i) for i in range(200)])
    labels = pd.Series(np.random.default_rng(0).choice(
        ["employed full time at a large company", "self employed in a small business"], 200))
    assert is_free_text(frame["review"]) and is_free_text(names)
    assert not is_free_text(tickets)  # distinct, but few values hold a space: a code
    assert not is_free_text(labels)  # long, but two levels: a category
    assert not is_free_text(frame["shop"]) and not is_free_text(frame["x0"])


def lists(tmp_path, features: str, frame: pd.DataFrame | None = None) -> dict:
    (tmp_path / "c.toml").write_text(CONFIG.replace(
        'numeric = "auto"\ncategorical = "auto"\n', features))
    cfg = load_config(tmp_path / "c.toml")
    return feature_lists(cfg, reviews(100, 0) if frame is None else frame)


def test_auto_puts_free_text_under_text_and_says_so(tmp_path, capsys):
    got = lists(tmp_path, 'numeric = "auto"\ncategorical = "auto"\n')
    assert got == {"numeric": ["x0"], "categorical": ["shop"], "text": ["review"]}
    assert "features.text = \"auto\": 1 free-text column(s) ['review']" in capsys.readouterr().out


def test_free_text_with_an_explicit_text_list_is_left_out_never_a_category(tmp_path, capsys):
    got = lists(tmp_path, 'numeric = "auto"\ncategorical = "auto"\ntext = []\n')
    assert got == {"numeric": ["x0"], "categorical": ["shop"], "text": []}
    assert "left out free-text column(s) ['review']" in capsys.readouterr().out


def test_explicit_categorical_list_keeps_auto_text_empty(tmp_path):
    got = lists(tmp_path, 'numeric = ["x0"]\ncategorical = ["shop"]\n')
    assert got == {"numeric": ["x0"], "categorical": ["shop"], "text": []}


def test_a_column_in_text_and_categorical_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="features.text lists \\['shop'\\]"):
        lists(tmp_path, 'numeric = ["x0"]\ncategorical = ["shop"]\ntext = ["shop"]\n')


def test_a_numeric_text_column_is_refused(tmp_path):
    root = write_world(tmp_path, 60, 20, CONFIG.replace('categorical = "auto"\n',
                                                         'categorical = "auto"\ntext = ["x0"]\n'))
    cfg = load_config(root / "comps" / SLUG / "config.toml")
    with pytest.raises(DataError, match="features.text lists \\['x0'\\], which hold numbers"):
        prepare(cfg, root / "comps" / SLUG, root / "data", tmp_path / "cache")


def test_out_of_core_refuses_features_text(tmp_path):
    from kit.out_of_core.run import check_supported

    path = tmp_path / SLUG / "config.toml"
    path.parent.mkdir()
    path.write_text(CONFIG)
    cfg = load_config(path, overrides=["features.text=[\"review\"]", "model.name=xgb"])
    with pytest.raises(ConfigError, match="features.text"):
        check_supported(cfg, path.parent, "the table is large")
    check_supported(load_config(path, overrides=["model.name=xgb"]), path.parent,
                    "the table is large")  # "auto" (the default) streams: free text left out


# --- the vectorizers ------------------------------------------------------------------------

def test_svd_compact_form_round_trips_through_skops(tmp_path):
    from kit.data.text import save_text

    frame = reviews(120, 2)
    text = TextFeatures(["review"], n_components=8, seed=0).fit(frame, compact=True)
    save_text(tmp_path / FILE, text)
    back = load_text(tmp_path / FILE)
    assert list(back.compact(frame).columns) == [f"svd_review_{k}" for k in range(8)]
    np.testing.assert_array_equal(back.compact(frame).to_numpy(), text.compact(frame).to_numpy())
    assert (back.transform(frame) != text.transform(frame)).nnz == 0


# --- end to end -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["linear", "lgbm"])
def test_text_is_fitted_on_the_folds_training_rows_only(world, model):
    root, runs = world
    run = Path(runs[model]["run_dir"])
    frame = pd.read_csv(root / "data" / "train.csv")
    split = read_folds(run, frame["id"].to_numpy())
    cfg = tomllib.loads((run / "config.toml").read_text())
    for fold in (0, 1):
        fit, valid = fold_rows(split, fold, cfg["cv"]["n_splits"])
        vocab = load_text(run / f"fold{fold}" / FILE).vocabulary()
        fit_words = set(" ".join(frame["review"].iloc[fit]).split())
        counts = pd.Series(" ".join(frame["review"].iloc[valid]).split()).value_counts()
        valid_only = set(counts[counts >= 2].index) - fit_words  # min_df = 2 would keep them
        assert valid_only, "the table must hold words only validation rows use"
        assert not valid_only & vocab
        assert fit_words & vocab


def test_auto_text_is_printed_and_stored_as_a_list(world):
    _, runs = world
    assert "free-text column(s) ['review']" in runs["linear"]["stdout"]
    stored = tomllib.loads((Path(runs["linear"]["run_dir"]) / "config.toml").read_text())
    assert stored["features"]["text"] == ["review"]
    assert stored["features"]["categorical"] == ["shop"]


def test_linear_reads_the_tfidf_and_trees_its_svd(world):
    _, runs = world
    linear = _load_sklearn(Path(runs["linear"]["run_dir"]) / "fold0" / "model.skops")
    assert isinstance(linear, TextJoined)
    assert linear.pipeline[-1].coef_.shape[1] > 100  # one-hot + x0 + the n-grams
    importance = pd.read_csv(Path(runs["lgbm"]["run_dir"]) / "fold0" / "importance.csv")
    assert importance.iloc[:, 0].astype(str).str.startswith("svd_review_").sum() == 32
    for model in ("linear", "lgbm"):
        scores = json.loads((Path(runs[model]["run_dir"]) / "scores.json").read_text())
        assert scores["oof"] > 0.8, (model, scores["oof"])  # x0 alone gives about 0.7


@pytest.mark.parametrize("model", ["linear", "lgbm"])
def test_predict_reproduces_the_runs_test_predictions(world, model):
    root, runs = world
    summary = script("predict.py", root, "--run", runs[model]["run_dir"],
                     "--data", str(root / "data"))
    assert summary["max_abs_diff_vs_run"] < 1e-9
