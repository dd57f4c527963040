"""Honest cross-validation: the fold contract, fold-safe features, target encoding, repeats.

A small binary competition is written to a temporary competitions root: pure-noise columns
(a unique id-like code, a 3-level code) and a label independent of them. Target encoding
through the kit must score near chance; the same encodings computed the leaky ways (fitted
on all rows, leave-one-out) before the folds must score far above it, which proves the
test can see a leak.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_script, write_config

from kit.config import CVConfig
from kit.splits.folds import make_split


def noise_data(folder: Path, n: int = 600, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)

    def table(rows, start):
        return pd.DataFrame({"id": np.arange(start, start + rows),
                             "uid": [f"u{i}" for i in rng.permutation(rows * 10)[:rows]],
                             "lvl3": rng.choice(["a", "b", "c"], rows),
                             "x": rng.normal(size=rows)})

    train, test = table(n, 1), table(200, 10_000)
    train["label"] = rng.integers(0, 2, n)  # independent of every column
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "label": 0}).to_csv(folder / "sample_submission.csv",
                                                        index=False)


def competition(root: Path, name: str, *, numeric=(), encode=(), repeats=1, features="",
                n_splits=5):
    folder = root / name
    folder.mkdir(parents=True)
    write_config(folder, {
        "features": {"numeric": list(numeric), "categorical": [], "target_encode": list(encode)},
        "model": {"name": "gbdt"}, "model.params.gbdt": {"max_iter": 60},
        "cv": {"n_splits": n_splits, "repeats": repeats}})
    if features:
        (folder / "features.py").write_text(features)
    return name


def train(tmp_path: Path, comp: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """scripts/train.py in this process (conftest.run_in_process): (its outcome, summary)."""
    proc, summary = run_script("train.py", "--comp", comp, "--data", tmp_path / "data",
                               "--runs", tmp_path / "runs", "--submissions", tmp_path / "subs",
                               *extra, summary=tmp_path / f"{comp}.json",
                               env={"KIT_COMPETITIONS_ROOT": str(tmp_path / "comps")})
    return proc, summary or {}


@pytest.fixture
def world(tmp_path):
    noise_data(tmp_path / "data")
    (tmp_path / "comps").mkdir()
    return tmp_path


LEAKY_ALL_ROWS = '''
def build(train, test):
    means = train.groupby("{col}")["label"].mean()  # every train row's own label included
    train["enc"] = train["{col}"].map(means)
    test["enc"] = test["{col}"].map(means).fillna(0.5)
    return train, test
'''

LEAKY_LEAVE_ONE_OUT = '''
def build(train, test):
    group = train.groupby("{col}")["label"]
    total, count = group.transform("sum"), group.transform("size")
    train["enc"] = (total - train["label"]) / (count - 1)  # (S - y_i) / (n - 1)
    test["enc"] = test["{col}"].map(group.mean()).fillna(0.5)
    return train, test
'''


@pytest.mark.parametrize("column", ["uid", "lvl3"])
def test_target_encoding_of_noise_scores_chance_through_the_kit(world, column):
    comp = competition(world / "comps", f"te-{column}", encode=[column])
    proc, summary = train(world, comp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert abs(summary["cv"]["oof"] - 0.5) < 0.07, summary["cv"]  # 600 rows: sd of chance 0.02
    fold0 = pd.read_parquet(Path(summary["run_dir"]) / "fold0" / "oof.parquet")
    assert len(fold0) == 120


@pytest.mark.parametrize("column, leak", [("uid", LEAKY_ALL_ROWS),
                                          ("lvl3", LEAKY_LEAVE_ONE_OUT)])
def test_the_leak_test_sees_leaky_encoders(world, column, leak):
    """The same noise encoded before the folds, fitted on all rows (uid: each row's own
    label) or leave-one-out (lvl3: (S - y_i) / (n - 1) separates the labels in each level)
    must score far above chance."""
    comp = competition(world / "comps", "leaky", numeric=["enc"],
                       features=leak.format(col=column))
    proc, summary = train(world, comp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["cv"]["oof"] > 0.9, summary["cv"]


SPY_HOOK = '''
import json, os
import pandas as pd

def fold_features(fit, frame):
    assert "label" not in frame.columns, "a transformed frame carries labels"
    assert not set(fit.index) & set(frame.index), "a row is in both fit and frame"
    with open(os.environ["SPY_LOG"], "a") as log:
        log.write(json.dumps({"fit": len(fit), "frame": len(frame)}) + "\\n")
    rate = fit["label"].mean()
    return pd.DataFrame({"fit_rate": rate, "x2": frame["x"] * 2}, index=frame.index)
'''


def test_the_fold_hook_never_sees_a_rows_own_label(world, monkeypatch):
    monkeypatch.setenv("SPY_LOG", str(world / "spy.jsonl"))
    comp = competition(world / "comps", "spy", numeric=["x"], features=SPY_HOOK)
    proc, summary = train(world, comp, "--fits", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    calls = [json.loads(line) for line in (world / "spy.jsonl").read_text().splitlines()]
    # per fold: validation rows, test rows, then 5 inner splits of the 480 training rows
    assert [c["frame"] for c in calls[:7]] == [120, 200, 96, 96, 96, 96, 96]
    assert [c["fit"] for c in calls[:7]] == [480, 480, 384, 384, 384, 384, 384]
    assert len(calls) == 14
    state = json.loads((Path(summary["run_dir"]) / "fold0" / "preprocessors.json").read_text())
    assert state["numeric"]["columns"] == ["x", "fit_rate", "x2"]


def test_splits_depend_on_ids_target_and_cv_settings_only():
    rng = np.random.default_rng(0)
    ids, y = np.arange(100, 300), rng.integers(0, 2, 200)
    cv = CVConfig(n_splits=5, seed=7, repeats=2)
    split = make_split(ids, y, cv)
    assert split.shape == (200, 2) and (split[:, 0] != split[:, 1]).any()
    order = rng.permutation(200)  # the rows in another order: every id keeps its folds
    np.testing.assert_array_equal(make_split(ids[order], y[order], cv), split[order])
    assert (make_split(ids, y, CVConfig(n_splits=5, seed=8, repeats=2)) != split).any()
    one = make_split(ids, y, CVConfig(n_splits=5, seed=7))
    np.testing.assert_array_equal(one[:, 0], split[:, 0])  # repeat 0 is the plain split


def test_runs_with_other_features_models_or_model_seed_share_the_split(world):
    plain = competition(world / "comps", "plain", numeric=["x"])
    encoded = competition(world / "comps", "encoded", encode=["lvl3"])
    runs = []
    for comp, extra in [(plain, ()), (encoded, ("--set", "model.name=linear")),
                        (plain, ("--seed", "5"))]:
        proc, summary = train(world, comp, "--fits", "1", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(pd.read_csv(Path(summary["run_dir"]) / "folds.csv"))
    for other in runs[1:]:
        pd.testing.assert_frame_equal(other, runs[0])
    proc, summary = train(world, plain, "--fits", "1", "--set", "cv.seed=1")
    reseeded = pd.read_csv(Path(summary["run_dir"]) / "folds.csv")
    assert (reseeded["fold"] != runs[0]["fold"]).any()
    assert reseeded["split"][0] != runs[0]["split"][0]
    # each distinct split is stored once per competition, keyed by its hash
    stored = sorted(p.stem for p in (world / "runs" / plain / "splits").glob("*.csv"))
    assert stored == sorted([runs[0]["split"][0], reseeded["split"][0]])
    assert json.loads((Path(summary["run_dir"]) / "scores.json").read_text())["split"] == \
        reseeded["split"][0]


def test_repeated_cv_averages_each_rows_oof_over_repeats_and_resumes(world):
    comp = competition(world / "comps", "repeated", numeric=["x"], encode=["lvl3"], repeats=3,
                       n_splits=2)
    proc, summary = train(world, comp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(summary["run_dir"])
    assert len(summary["cv"]["fold_scores"]) == 6 and len(summary["cv"]["repeat_means"]) == 3
    assert "over 3 repeats" in proc.stdout
    assert list(pd.read_csv(run / "folds.csv").columns) == ["id", "fold", "fold_r1", "fold_r2",
                                                            "split"]
    parts = pd.concat([pd.read_parquet(run / f"fold{f}" / "oof.parquet") for f in range(6)])
    assert sorted(parts["repeat"].unique()) == [0, 1, 2]
    assert (parts.groupby("id").size() == 3).all()  # each row validated once per repeat
    oof = pd.read_parquet(run / "oof.parquet").set_index("id")
    np.testing.assert_allclose(oof["p_1"], parts.groupby("id")["p_1"].mean().loc[oof.index])
    repeat0 = parts[parts["repeat"] == 0].set_index("id")["fold"]
    assert (oof["fold"] == repeat0.loc[oof.index]).all()  # `fold` is the repeat-0 fold

    proc, cut = train(world, comp, "--fits", "3")  # stopped inside repeat 1
    assert proc.returncode == 0 and len(cut["cv"]["fold_scores"]) == 3
    proc, resumed = train(world, comp, "--resume", cut["run_dir"], "--fits", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(Path(resumed["run_dir"]) / "oof.parquet"),
                                  pd.read_parquet(run / "oof.parquet"))


EXTRA_ROWS = '''
import numpy as np
import pandas as pd

def extra_train_rows(fit):
    """300 labelled rows where x decides the label: an "original" dataset."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    return pd.DataFrame({"x": x, "label": (x > 0).astype(int)})

def fold_features(fit, frame):
    return pd.DataFrame({"x_sq": frame["x"] ** 2}, index=frame.index)
'''


def test_extra_training_rows_join_each_folds_training_rows_only(world):
    """The noise label cannot be learnt from the competition's rows; 300 added rows where
    the sign of x decides it are learnt, and they never become validation rows."""
    comp = competition(world / "comps", "extra", numeric=["x"], features=EXTRA_ROWS)
    proc, summary = train(world, comp, "--fits", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("extra_train_rows() added 300 training rows") == 2
    run = Path(summary["run_dir"])
    info = json.loads((run / "fold0" / "done.json").read_text())
    assert info["train_rows"] == 480 + 300
    oof = pd.read_parquet(run / "oof.parquet")
    assert len(oof) == 240 and oof["id"].isin(range(1, 601)).all()
    # the added rows taught "x > 0 -> 1": the OOF predictions follow the sign of x
    data = pd.read_csv(world / "data" / "train.csv").set_index("id").loc[oof["id"]]
    assert ((oof["p_1"].to_numpy() > 0.5) == (data["x"].to_numpy() > 0)).mean() > 0.9
    state = json.loads((run / "fold0" / "preprocessors.json").read_text())
    assert state["numeric"]["columns"] == ["x", "x_sq"]


def test_the_cpu_profile_is_printed_and_resume_keeps_the_runs_config(world):
    comp = competition(world / "comps", "profiled", numeric=["x"])
    config = world / "comps" / comp / "config.toml"
    config.write_text(config.read_text() + '\n[cpu]\n"model.name" = "linear"\n')
    proc, summary = train(world, comp, "--fits", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "device profile [cpu] from config.toml: model.name=linear" in proc.stdout
    run = Path(summary["run_dir"])
    assert run.name.split("_")[1] == "linear"
    proc, plain = train(world, comp, "--fits", "1", "--profile", "none")
    assert "device profile" not in proc.stdout and "_gbdt_" in plain["run_dir"]
    # the config changes; a resumed run keeps the model it was started with
    config.write_text(config.read_text().replace('"model.name" = "linear"',
                                                 '"model.name" = "mlp"'))
    proc, resumed = train(world, comp, "--resume", str(run), "--fits", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "device profile" not in proc.stdout
    assert json.loads((run / "fold1" / "done.json").read_text())["model_file"] == "model.skops"


# --- the batch hook: features.py transform_batch(frame) -> frame ----------------------------

BATCH_HOOK = '''
SEEN = []


def transform_batch(frame):
    assert "label" not in frame.columns  # label-free: the kit hides the target
    SEEN.append(len(frame))
    frame = frame.copy()
    frame["lvl3_b"] = (frame["lvl3"] == "b").astype(float)
    return frame
'''


def test_a_batch_hook_adds_row_local_columns_without_seeing_the_label(world):
    comp = competition(world / "comps", "batched", numeric=["x", "lvl3_b"],
                       features=BATCH_HOOK)
    proc, summary = train(world, comp, "--fits", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.isfinite(summary["cv"]["mean"])  # lvl3_b exists only through the hook


def test_a_batch_hook_that_drops_rows_is_an_error_naming_it(world):
    from kit.errors import DataError
    from kit.hooks import map_batches

    frame = pd.DataFrame({"a": np.arange(10), "label": np.arange(10) % 2})
    out = map_batches(lambda b: b.assign(a2=b["a"] * 2), frame, hide=("label",), batch_rows=3)
    assert out["a2"].tolist() == list(range(0, 20, 2)) and out["label"].tolist() == [0, 1] * 5
    with pytest.raises(DataError, match=r"features.py: <lambda>\(\) must return its batch's 3 "
                                        r"rows in order.*got 2 rows.*never drop or reorder"):
        map_batches(lambda b: b.iloc[1:], frame, batch_rows=3, where="features.py")
    comp = competition(world / "comps", "dropping", numeric=["x"],
                       features="def transform_batch(frame):\n    return frame.iloc[::2]\n")
    proc, _ = train(world, comp, "--fits", "1")
    assert proc.returncode == 2 and "transform_batch() must return" in proc.stderr
    assert not (world / "subs" / comp).exists() or not list((world / "subs" / comp).iterdir())


GROUP_SPY = '''
import json, os
import pandas as pd

def build(train, test):
    train["g"] = train["id"] % 40  # 40 groups of 15 rows, the rows of one spread over train.csv
    return train, test

def fold_features(fit, frame):
    if frame.index.max() < 600:  # a fold's validation rows or an inner held-out part
        shared = sorted(set(fit["g"]) & set(frame["g"]))
        with open(os.environ["SPY_LOG"], "a") as log:
            log.write(json.dumps({"frame": len(frame), "shared": shared}) + "\\n")
    return pd.DataFrame({"fit_rate": fit["label"].mean()}, index=frame.index)
'''


@pytest.mark.parametrize("strategy", ["group", "stratified_group"])
def test_the_inner_split_of_fold_features_keeps_groups_together(world, monkeypatch, strategy):
    """cv.group: the outer folds keep a group on one side, and so must the inner K-fold that
    gives a fold's training rows their fold features (else a row's group-mates' labels,
    which a group rate is made of, reach it from the other side)."""
    monkeypatch.setenv("SPY_LOG", str(world / "spy.jsonl"))
    comp = competition(world / "comps", "grouped", numeric=["x"], features=GROUP_SPY)
    proc, _ = train(world, comp, "--fits", "1", "--set", f"cv.strategy={strategy}",
                    "--set", "cv.group=g")
    assert proc.returncode == 0, proc.stderr[-3000:]
    calls = [json.loads(line) for line in (world / "spy.jsonl").read_text().splitlines()]
    assert len(calls) == 6  # the validation rows, then 5 inner held-out parts
    assert sum(c["frame"] for c in calls[1:]) == 480  # every training row once
    assert [c["shared"] for c in calls] == [[]] * 6
