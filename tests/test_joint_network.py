"""One network for several targets (issue 30, item 4): with a network kind and
model.multi_output, a run with several targets trains one network per fold with an output
per target (a sigmoid per label, or a value per number), shared by the columns' runs
(kit/tasks/joint.py). Real runs of mlp on small tables in tmp folders."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_several_targets import SLUG, make_world, script, train

from kit.kaggle.kernel import build_run_dataset
from kit.objective import Objective, TargetTransform
from kit.run_folder import target_dirs

MLP = ["--set", "model.name=mlp", "--set", "train.epochs=4", "--set", "train.batch_size=64"]


def _run_dir(summary: dict):
    from pathlib import Path

    return Path(summary["run_dir"])


# --- the objective ------------------------------------------------------------------------


def test_several_binary_targets_are_a_sigmoid_each_and_the_mean_of_their_bce():
    obj = Objective("classification", 2, n_targets=3)
    assert obj.n_outputs == 3
    logits = torch.tensor([[0.3, -1.0, 2.0], [-0.5, 0.2, 0.1]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    expected = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1).mean()
    assert torch.isclose(obj.loss(logits, y), expected)
    w = torch.tensor([1.0, 3.0])  # a row of weight 3 counts three times
    per_row = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1)
    assert torch.isclose(obj.loss(logits, y, w), (per_row[0] + 3 * per_row[1]) / 4)
    assert torch.allclose(obj.predict(logits), torch.sigmoid(logits))
    assert obj.batch_target(np.array([[0, 1, 1]])).dtype == np.float32


def test_several_numbers_are_standardized_each_on_its_own_and_come_back():
    y = np.column_stack([np.linspace(1000, 5000, 50), np.linspace(0.01, 0.02, 50)])
    t = TargetTransform("none", standardize=True).fit(y)
    z = t.transform(y)
    assert np.allclose(z.mean(0), 0) and np.allclose(z.std(0), 1)  # each column its own scale
    back = TargetTransform.from_state(json.loads(json.dumps(t.state_dict())))
    assert np.allclose(back.inverse(z), y)
    one = TargetTransform("log1p", standardize=True).fit(y[:, 0])  # one column: floats, as before
    assert isinstance(one.state_dict()["mean"], float)
    obj = Objective("regression", target=t, n_targets=2)
    assert obj.n_outputs == 2 and obj.predict(torch.zeros(4, 2)).shape == (4, 2)


# --- runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    root = make_world(tmp_path_factory.mktemp("joint"))
    proc, summary = train(root, *MLP)
    return root, proc, summary


def test_one_network_trains_per_fold_and_each_column_takes_its_output(joint_run):
    root, proc, summary = joint_run
    run = _run_dir(summary)
    assert "one network with 2 outputs" in proc.stdout
    assert proc.stdout.count("takes its output of the network") == 3  # b's 3 folds train nothing
    folders = target_dirs(run, ["a", "b"])
    for k in range(3):
        network = run / "network" / f"fold{k}"
        assert list(network.glob("best_*.pt")), "the network's checkpoint"
        with np.load(network / "joint.npz") as saved:
            valid = saved["valid"]
        assert valid.shape[1] == 2
        for j, column in enumerate(("a", "b")):
            fold = folders[column] / f"fold{k}"
            assert not list(fold.glob("*.pt")), "no network of the column's own"
            oof = pd.read_parquet(fold / "oof.parquet")
            assert np.allclose(oof["p_1"].to_numpy(), valid[:, j])
            assert json.loads((fold / "done.json").read_text())["network"] == str(network)
    # each column's score is its own metric of its output; both beat chance on these labels
    assert all(s["cv"]["oof"] > 0.75 for s in summary["targets"].values())


def test_predict_and_the_kernel_dataset_read_the_shared_network(joint_run, tmp_path):
    root, _, summary = joint_run
    run = _run_dir(summary)
    proc, out = script(root, "predict.py", "--run", str(run), "--data", str(root / "data"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "largest difference from the run's test_pred.parquet: 0.00e+00" in proc.stdout
    made = pd.read_csv(out["submission"])
    assert made.equals(pd.read_csv(run / "submission.csv"))
    built = build_run_dataset(SLUG, run, "someone", tmp_path)
    copied = {p.relative_to(built["dataset_dir"]).as_posix()
              for p in tmp_path.rglob("*") if p.is_file()}
    assert any(p.startswith("network/fold0/best_") for p in copied)


def test_a_resumed_run_trains_only_the_folds_it_lacks(tmp_path):
    root = make_world(tmp_path)
    _, first = train(root, *MLP, "--fits", "1")
    run = _run_dir(first)
    stamp = (run / "network" / "fold0" / "joint.npz").stat().st_mtime_ns
    proc, summary = train(root, "--resume", str(run), "--fits", "3")
    assert (run / "network" / "fold0" / "joint.npz").stat().st_mtime_ns == stamp
    assert "fold 0: one network" not in proc.stdout and "fold 1: one network" in proc.stdout
    assert summary["cv"]["fold_scores"] and len(summary["cv"]["fold_scores"]) == 3


def test_a_refit_shares_one_network_too_and_predicts_alike(tmp_path):
    root = make_world(tmp_path, problem="regression", metric="rmse")
    proc, summary = train(root, *MLP, "--refit", "only")
    run = _run_dir(summary)
    assert (run / "network" / "refit" / "seed0" / "joint.npz").is_file()
    assert proc.stdout.count("refit seed0: one network") == 1
    for folder in target_dirs(run, ["a", "b"]).values():
        assert not list((folder / "refit" / "seed0").glob("*.pt"))
    # the regression's two columns on their own scales: better than predicting the mean
    train_rows = pd.read_csv(root / "data" / "train.csv")
    for column, s in summary["targets"].items():
        assert s["cv"]["oof"] < train_rows[column].std()
    proc, out = script(root, "predict.py", "--run", str(run), "--data", str(root / "data"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pd.read_csv(out["submission"]).equals(pd.read_csv(run / "submission.csv"))


def test_the_kit_says_why_each_column_trains_its_own_network(tmp_path):
    root = make_world(tmp_path)
    proc, summary = train(root, *MLP, "--set", "model.multi_output=false", "--fits", "1")
    assert "a model per column (model.multi_output = false)" in proc.stdout
    assert not (_run_dir(summary) / "network").exists()
    proc, _ = train(root, "--fits", "1")  # lgbm
    assert "a model per column (model.name = 'lgbm' trains a model per column)" in proc.stdout


def test_a_column_of_more_than_two_classes_is_refused_with_the_fix(tmp_path):
    root = make_world(tmp_path, metric="accuracy")  # a label per column: a 3-class one fits
    train_csv = root / "data" / "train.csv"
    frame = pd.read_csv(train_csv)
    frame.loc[frame.index % 3 == 0, "a"] = 2
    frame.to_csv(train_csv, index=False)
    proc, _ = script(root, "train.py", "--comp", SLUG, "--data", str(root / "data"),
                     "--runs", str(root / "runs"), "--submissions", str(root / "subs"), *MLP)
    assert proc.returncode == 2
    assert "['a'] have more than two classes" in proc.stderr
    assert "model.multi_output = false" in proc.stderr
    assert not (root / "subs").exists()
    assert not list((root / "runs" / SLUG).glob("*_mlp_*")), "no run folder left behind"


def test_a_resume_keeps_the_choice_the_run_began_with(tmp_path):
    """A run begun with a network per column (as every run before model.multi_output did)
    resumes with a network per column, whatever the default says now."""
    root = make_world(tmp_path)
    _, first = train(root, *MLP, "--set", "model.multi_output=false", "--fits", "1")
    run = _run_dir(first)
    config = run / "config.toml"  # as before the key existed: the default (true) applies
    text = config.read_text()
    assert "multi_output = false" in text
    config.write_text(text.replace("multi_output = false\n", ""))
    proc, summary = train(root, "--resume", str(run), "--fits", "3")
    assert "a model per column (as the run began" in proc.stdout
    assert not (run / "network").exists() and len(summary["cv"]["fold_scores"]) == 3
    proc, _ = script(root, "predict.py", "--run", str(run), "--data", str(root / "data"))
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_two_ranks_train_the_shared_network_and_write_the_run_once(tmp_path):
    """torchrun with 2 gloo ranks: the first column's fold trains the network on both ranks,
    rank 0 writes it, the second column reads it on both; rank 0 alone writes the run."""
    import os
    import subprocess
    import sys

    from conftest import SCRIPTS

    root = make_world(tmp_path)
    summary = root / "summary.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPTS / "train.py"), "--comp", SLUG, "--data", str(root / "data"),
           "--runs", str(root / "runs"), "--submissions", str(root / "subs"), *MLP,
           "--set", "train.epochs=2", "--fits", "1", "--summary-json", str(summary)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "KIT_COMPETITIONS_ROOT": str(root / "comps")})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert proc.stdout.count("fold 0: one network for 2 targets") == 1
    run = _run_dir(json.loads(summary.read_text()))
    assert (run / "network" / "fold0" / "joint.npz").is_file()
    submission = pd.read_csv(run / "submission.csv")
    assert list(submission.columns) == ["id", "b", "a"]  # the sample's order
