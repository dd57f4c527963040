"""Several targets (issue 30, item 4): data.target as a list trains one run per column on one
split stratified on every column, scores the mean over the columns, submits one column per
target in the sample's order; predict, resume, ensemble, the kernel's dataset and submit's
check take the columns one by one. Real runs on small tables in tmp folders."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_in_process, run_script

from kit.config import Config, CVConfig, apply_overrides, load_config
from kit.errors import ConfigError, DataError
from kit.metrics.registry import get_metric
from kit.run_folder import target_dirs
from kit.splits.folds import make_split, split_key

ROOT = Path(__file__).resolve().parents[1]
SLUG = "two-labels"
CONFIG = """
[competition]
task = "tabular"
problem = "{problem}"
metric = "{metric}"

[data]
id = "id"
target = {targets}

[features]
numeric = "auto"

[model]
name = "lgbm"

[model.params.lgbm]
rounds = 40
early_stopping_rounds = 10
learning_rate = 0.2

[cv]
n_splits = 3
"""


def make_world(root: Path, *, problem: str = "classification", metric: str = "auc",
               targets=("a", "b"), sample_order=("b", "a"), rows: int = 600) -> Path:
    """A competition folder and its data: labels (or values) a and b driven by x1..x4,
    train-only column c, a sample submission holding the targets in `sample_order`."""
    comp = root / "comps" / SLUG
    comp.mkdir(parents=True)
    (comp / "config.toml").write_text(CONFIG.format(problem=problem, metric=metric,
                                                    targets=json.dumps(list(targets))))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows + 200, 4))
    frame = pd.DataFrame(x.round(4), columns=["x1", "x2", "x3", "x4"])
    frame.insert(0, "id", np.arange(len(frame)) + 1000)
    score_a, score_b = x[:, 0] + 0.5 * x[:, 1], x[:, 2] - x[:, 1] * x[:, 3]
    if problem == "classification":
        score_a, score_b = (score_a > 0.3).astype(int), (score_b > -0.2).astype(int)
    train = frame.iloc[:rows].assign(a=score_a[:rows], b=score_b[:rows], c=0)
    data = root / "data"
    data.mkdir()
    train.to_csv(data / "train.csv", index=False)
    frame.iloc[rows:].to_csv(data / "test.csv", index=False)
    sample = frame.iloc[rows:][["id"]].assign(**{t: 0.5 for t in sample_order})
    sample.to_csv(data / "sample_submission.csv", index=False)
    return root


def script(root: Path, name: str, *args, subprocess_: bool = False):
    """A script run in this process (conftest.run_in_process), or in a new interpreter where
    the exit status a shell sees is the point; (the process, its --summary-json)."""
    return run_script(name, *args, summary=root / f"{name}-summary.json", fresh=subprocess_,
                      env={"KIT_COMPETITIONS_ROOT": str(root / "comps")})


def train(root: Path, *extra):
    proc, summary = script(root, "train.py", "--comp", SLUG, "--data", str(root / "data"),
                           "--runs", str(root / "runs"), "--submissions", str(root / "subs"),
                           *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, summary


# --- config and split -------------------------------------------------------------------


def test_a_target_list_loads_and_a_string_stays_one_column_commas_and_all():
    cfg = apply_overrides(Config(), ['data.target=["a", "b"]'])
    assert cfg.data.target == ("a", "b") and cfg.data.targets == ("a", "b")
    assert apply_overrides(Config(), ["data.target=a,b"]).data.targets == ("a,b",)
    assert apply_overrides(Config(), ['data.target=["a"]']).data.target == "a"
    with pytest.raises(ConfigError, match="names a column twice"):
        apply_overrides(Config(), ['data.target=["a", "a"]'])
    with pytest.raises(ConfigError, match="data.target"):
        apply_overrides(Config(), ["data.target=[1, 2]"])


def test_folds_on_several_labels_keep_each_labels_share_and_hash_every_column():
    rng = np.random.default_rng(1)
    labels = np.column_stack([rng.random(900) < 0.1, rng.random(900) < 0.4]).astype(int)
    ids = np.arange(900)
    cv = CVConfig(n_splits=5, seed=3)
    folds = make_split(ids, labels, cv)[:, 0]
    for column in labels.T:
        shares = [column[folds == k].mean() for k in range(5)]
        assert max(shares) - min(shares) < 0.02, shares  # iterative stratification: even
    assert (make_split(ids, labels, cv) == make_split(ids[::-1], labels[::-1], cv)[::-1]).all()
    flipped = labels.copy()
    flipped[0, 1] = 1 - flipped[0, 1]  # the second column changes the split's hash
    assert split_key(ids, labels, cv) != split_key(ids, flipped, cv)
    # one column stays the single-target split: same hash, same folds
    assert split_key(ids, labels[:, 0], cv) == split_key(ids, labels[:, :1], cv)


def test_a_label_rarer_than_the_folds_is_refused_naming_the_fix():
    labels = np.column_stack([np.r_[np.ones(3), np.zeros(97)], np.arange(100) % 2]).astype(int)
    with pytest.raises(DataError, match="rarest class has 3 rows.*cv.n_splits = 5"):
        make_split(np.arange(100), labels, CVConfig(n_splits=5))


# --- end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two runs on one labelled table: lgbm (first with --fits 1, then --resume) and linear."""
    root = make_world(tmp_path_factory.mktemp("several"))
    _, partial = train(root, "--fits", "1")
    resumed, lgbm = train(root, "--resume", partial["run_dir"], "--fits", "3")
    _, linear = train(root, "--set", "model.name=linear")
    return root, partial, resumed, lgbm, linear


def test_each_target_trains_as_its_own_run_on_one_split(world):
    root, partial, resumed, lgbm, _ = world
    run = Path(lgbm["run_dir"])
    assert run == Path(partial["run_dir"])  # the resume finished the same run
    assert "resumed" in resumed.stdout and "target 2 of 2: 'b'" in resumed.stdout
    columns = target_dirs(run, ("a", "b"))
    for column, folder in columns.items():
        cfg = load_config(folder / "config.toml")
        assert cfg.data.target == column and cfg.cv.stratify_on == ("a", "b")
        assert len(list(folder.glob("fold*/done.json"))) == 3  # the resume trained the rest
    folds = [pd.read_csv(f / "folds.csv") for f in columns.values()]
    pd.testing.assert_frame_equal(*folds)
    assert len(list((root / "runs" / SLUG / "splits").glob("*.csv"))) == 1  # one stored split
    train_rows = pd.read_csv(root / "data" / "train.csv").merge(folds[0], on="id")
    for column in ("a", "b"):  # every label's share alike in every fold
        shares = train_rows.groupby("fold")[column].mean()
        assert shares.max() - shares.min() < 0.05


def test_scores_are_the_mean_over_the_targets_and_each_is_kept(world):
    _, _, resumed, lgbm, _ = world
    run = Path(lgbm["run_dir"])
    scores = json.loads((run / "scores.json").read_text())
    parts = [json.loads((f / "scores.json").read_text())
             for f in target_dirs(run, ("a", "b")).values()]
    assert scores["metric"] == "auc" and scores["mode"] == "max"
    assert scores["oof"] == pytest.approx(np.mean([p["oof"] for p in parts]))
    assert scores["fold_scores"] == pytest.approx(np.mean([p["fold_scores"] for p in parts], axis=0))
    assert scores["targets"]["b"]["oof"] == pytest.approx(parts[1]["oof"])
    assert min(p["oof"] for p in parts) > 0.8  # both labels learned from x1..x4
    assert "CV auc (mean over 2 targets)" in resumed.stdout
    assert lgbm["cv"]["oof"] == pytest.approx(scores["oof"])


def test_the_submission_has_one_column_per_target_in_the_samples_order(world):
    root, _, _, lgbm, _ = world
    run = Path(lgbm["run_dir"])
    submission = pd.read_csv(lgbm["submission"])
    sample = pd.read_csv(root / "data" / "sample_submission.csv")
    assert list(submission.columns) == ["id", "b", "a"]  # the sample's, not data.target's
    assert submission["id"].tolist() == sample["id"].tolist()
    for column, folder in target_dirs(run, ("a", "b")).items():
        own = pd.read_csv(folder / "submission.csv")
        assert list(own.columns) == ["id", column]
        np.testing.assert_array_equal(submission[column], own[column])
        assert submission[column].between(0, 1).all()  # auc: probabilities of the label


def test_predict_reproduces_the_submission_column_by_column(world):
    root, _, _, lgbm, _ = world
    proc, summary = script(root, "predict.py", "--run", lgbm["run_dir"],
                           "--data", str(root / "data"), "--out", str(root / "predicted"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["max_abs_diff_vs_run"] == 0
    assert (Path(summary["submission"]).read_bytes()
            == (Path(lgbm["run_dir"]) / "submission.csv").read_bytes())
    assert set(summary["targets"]) == {"a", "b"}


def test_an_ensemble_blends_each_target_on_its_own(world):
    root, _, _, lgbm, linear = world
    proc, summary = script(root, "ensemble.py", "--comp", SLUG, lgbm["run_dir"],
                           linear["run_dir"], "--method", "hill", "--data", str(root / "data"),
                           "--runs", str(root / "runs"), "--submissions", str(root / "subs"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "== target 'a' ==" in proc.stdout and "== target 'b' ==" in proc.stdout
    folder = Path(summary["run_dir"])
    for column, part in summary["targets"].items():
        members = [Path(m["run_dir"]) for m in part["members"]]
        assert members == [target_dirs(Path(r["run_dir"]), ("a", "b"))[column]
                           for r in (lgbm, linear)]
        assert Path(part["run_dir"]) == target_dirs(folder, ("a", "b"))[column]
    scores = json.loads((folder / "scores.json").read_text())
    assert scores["oof"] == pytest.approx(np.mean([p["oof_score"] for p in
                                                   summary["targets"].values()]))
    assert list(pd.read_csv(summary["submission"]).columns) == ["id", "b", "a"]
    assert not (root / "subs" / SLUG / "a.csv").exists()  # columns are not submissions


def test_the_kernel_dataset_packs_every_targets_models(world, tmp_path):
    root, _, _, lgbm, _ = world
    proc, _ = script(root, "kernel.py", "--comp", SLUG, "--mode", "predict", "--run",
                     lgbm["run_dir"], "--demo", "--out", str(tmp_path / "kernel"),
                     "--dataset-out", str(tmp_path / "datasets"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (dataset,) = (tmp_path / "datasets").iterdir()
    for column in ("a", "b"):
        assert (dataset / "targets" / column / "fold2" / "model.txt").is_file()
        assert (dataset / "targets" / column / "config.toml").is_file()


def test_submit_checks_each_target_column_in_its_form(world, tmp_path):
    root, _, _, lgbm, _ = world
    good = Path(lgbm["submission"])
    frame = pd.read_csv(good)
    frame[["id", "a", "b"]].to_csv(tmp_path / "swapped.csv", index=False)
    frame.assign(a=frame["a"] + 1).to_csv(tmp_path / "outside.csv", index=False)
    args = ["--comp", SLUG, "-m", "test", "--data", str(root / "data"), "--dry-run", "--force"]
    proc, _ = script(root, "submit.py", "--file", str(good), *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for bad, message in (("swapped", "names and order must match"),
                         ("outside", "column 'a' holds probabilities")):
        proc, _ = script(root, "submit.py", "--file", str(tmp_path / f"{bad}.csv"), *args)
        assert proc.returncode == 2 and message in proc.stderr


def test_several_numbers_train_as_a_regression_per_column(tmp_path):
    root = make_world(tmp_path, problem="regression", metric="rmse", sample_order=("a", "b"),
                      rows=400)
    _, summary = train(root)
    scores = json.loads((Path(summary["run_dir"]) / "scores.json").read_text())
    assert scores["problem"] == "regression" and scores["mode"] == "min"
    assert set(scores["targets"]) == {"a", "b"} and scores["oof"] < 1.0  # targets' std ~1.1
    submission = pd.read_csv(summary["submission"])
    assert list(submission.columns) == ["id", "a", "b"]
    assert submission["b"].std() > 0.3  # values, not placeholders


@pytest.mark.parametrize("change, message", [
    ({"targets": ("a", "missing")}, "missing"),
    ({"sample_order": ("a", "other")}, "sample submission's columns ['a', 'other'] are not the "
                                      "targets ['a', 'b']"),
])
def test_a_bad_target_list_exits_2_and_writes_nothing(tmp_path, change, message):
    root = make_world(tmp_path, rows=300, **change)
    proc, _ = script(root, "train.py", "--comp", SLUG, "--data", str(root / "data"),
                     "--runs", str(root / "runs"), "--submissions", str(root / "subs"),
                     subprocess_=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert not list((root / "runs").glob(f"{SLUG}/2*"))  # no run folder left behind
    assert not (root / "subs").exists()


def test_tuning_scores_a_trial_by_the_mean_over_the_targets(tmp_path):
    root = make_world(tmp_path, rows=300)
    proc, summary = script(root, "tune.py", "--comp", SLUG, "--model", "lgbm", "--trials", "2",
                           "--data", str(root / "data"), "--runs", str(root / "runs"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trial = Path(summary["folder"]) / f"trial_{summary['best']['number']:04d}"
    assert sorted(p.name for p in (trial / "targets").iterdir()) == ["a", "b"]
    scores = json.loads((trial / "scores.json").read_text())
    assert summary["best"]["value"] == pytest.approx(scores["mean"])
    assert scores["mean"] == pytest.approx(np.mean([scores["targets"][c]["mean"]
                                                    for c in ("a", "b")]))

def test_a_predict_kernel_submits_every_target_and_checks_each_column(tmp_path):
    """The real kernel script, kit and predict.py, offline as Kaggle runs it, on a dry run
    of the S3E18 demo: its final check validates each column in its own form."""
    from test_kaggle import kaggle_tree, kernel_env, run_kernel

    from kit.kaggle.kernel import build_kernel
    from kit.submission import validate_run_file

    slug = "playground-series-s3e18"
    root = kaggle_tree(tmp_path, slug)
    proc = run_in_process("train.py", "--comp", slug, "--dry-run", "--data",
                          root / "input" / slug, "--runs", tmp_path / "runs", "--submissions",
                          tmp_path / "subs", "--summary-json", tmp_path / "summary.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    build = build_kernel(slug, user="me", mode="predict", run=summary["run_dir"],
                         out=tmp_path / "k", dataset_out=tmp_path / "ds")
    attached = root / "input" / build["dataset_slug"]
    attached.parent.mkdir(parents=True, exist_ok=True)
    Path(build["dataset_dir"]).rename(attached)
    env = {k: v for k, v in kernel_env(tmp_path, root).items() if k != "KIT_COMPETITIONS_ROOT"}
    done = run_kernel(build["script"], env, root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    final = root / "working" / "submission.csv"
    assert list(pd.read_csv(final).columns) == ["id", "EC1", "EC2"]
    pd.testing.assert_frame_equal(pd.read_csv(final),
                                  pd.read_csv(Path(summary["run_dir"]) / "submission.csv"))
    cfg = load_config(ROOT / "competitions" / slug / "config.toml")
    sample = root / "input" / slug / "sample_submission.csv"
    validate_run_file(final, sample, cfg, get_metric("auc"))


def test_the_portfolio_blends_each_target_of_its_members(world, tmp_path):
    """portfolio.py on several targets: its members are runs with several targets, its
    blend one ensemble per column, its submission every target in the sample's order."""
    root = world[0]
    proc, summary = script(root, "portfolio.py", "--comp", SLUG, "--members", "linear,lgbm",
                           "--seeds", "1", "--time-budget", "300", "--data", str(root / "data"),
                           "--runs", str(tmp_path / "runs"),
                           "--submissions", str(tmp_path / "subs"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    blend = Path(summary["blend"]["run_dir"])
    assert sorted(p.name for p in (blend / "targets").iterdir()) == ["a", "b"]
    assert list(pd.read_csv(summary["submission"]).columns) == ["id", "b", "a"]
    assert set(summary["blend"]["weights"]) == {Path(j["run_dir"]).name
                                                for j in summary["members"]}


def test_several_targets_stream_out_of_core_a_model_per_column(tmp_path, monkeypatch):
    """A table that streams: each column's run streams it (hashed folds on the id, the same
    for every column), writes its submission chunk by chunk against the sample's id and its
    own column, and the run merges them in the sample's order."""
    from kit.cli import train_main
    from kit.data.synthetic import write_competition

    comps, data = tmp_path / "comps", tmp_path / "data"
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(comps))
    write_competition(data, 1200, seed=1, competitions=comps)
    train_rows = pd.read_csv(data / "train.csv")
    noise = np.random.default_rng(0).normal(size=len(train_rows))
    train_rows.assign(second=(train_rows["num_00"] + noise > 0).astype(int)).to_csv(
        data / "train.csv", index=False)
    sample = pd.read_csv(data / "sample_submission.csv")
    sample.insert(1, "second", 0.5)  # the sample's order: second, then target
    sample.to_csv(data / "sample_submission.csv", index=False)
    summary = train_main(["--comp", "synthetic-tabular", "--data", str(data),
                          "--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"),
                          "--set", "cv.n_splits=3", "--set", "model.params.xgb.rounds=20",
                          "--set", 'data.target=["target", "second"]',
                          "--set", "data.out_of_core=on", "--set", "model.name=xgb"])
    run = Path(summary["run_dir"])
    for column in ("target", "second"):
        scores = json.loads((run / "targets" / column / "scores.json").read_text())
        assert scores["out_of_core"] and scores["oof"] > 0.6
    submission = pd.read_csv(summary["submission"])
    assert list(submission.columns) == ["id", "second", "target"]
    assert submission["id"].tolist() == sample["id"].tolist()
    column_sub = pd.read_csv(run / "targets" / "second" / "submission.csv")
    assert np.allclose(submission["second"], column_sub["second"])


def test_a_network_on_a_streamed_table_trains_per_column_and_says_why(tmp_path):
    from kit.pipeline.targets import per_column_reason

    cfg = apply_overrides(Config(), ['data.target=["a", "b"]', "model.name=mlp",
                                     "data.out_of_core=on"])
    assert per_column_reason(cfg, tmp_path) == ('out of core (data.out_of_core = "on"): a '
                                                "network per column")
