"""End-to-end: scripts/train.py --demo --dry-run for each image competition, in tmp folders.

Every stage runs for real (demo data in the Kaggle layout, folds, training, TTA prediction,
checked submission), with the config's [dry_run] model and a few steps.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT

from kit.submission import validate_file


def train(tmp_path, comp, *extra, launcher=()):
    summary = tmp_path / "summary.json"
    cmd = [sys.executable, *launcher, str(ROOT / "scripts" / "train.py"), "--comp", comp, "--demo",
           "--dry-run", "--data", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"),
           "--submissions", str(tmp_path / "subs"), "--summary-json", str(summary), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, json.loads(summary.read_text())


def check_run(run: Path, n_classes: int):
    for name in ["config.toml", "run.json", "folds.csv", "oof.parquet", "test_pred.parquet",
                 "scores.json", "submission.csv", "fold0/done.json", "fold0/last.pt",
                 "fold0/history.csv"]:
        assert (run / name).exists(), name
    best = list((run / "fold0").glob("best_e*.pt"))
    assert len(best) == 1
    state = torch.load(best[0], map_location="cpu", weights_only=True)  # tensors only
    assert state["meta"]["problem"] == "classification"
    assert state["meta"]["n_outputs"] == (1 if n_classes == 2 else n_classes)
    oof = pd.read_parquet(run / "oof.parquet")
    assert list(oof.columns) == ["id", "fold", "target", *[f"p_{c}" for c in range(n_classes)]]
    np.testing.assert_allclose(oof.filter(like="p_").sum(axis=1), 1, atol=1e-5)
    info = json.loads((run / "fold0" / "done.json").read_text())
    assert info["tta"] is True  # both configs predict with TTA
    return oof


def test_digit_recognizer_demo_dry_run(tmp_path):
    proc, summary = train(tmp_path, "digit-recognizer", "--set", "image.tta=shift")
    assert "DEMO DATA" in proc.stdout and "small_cnn" in proc.stdout
    assert "device profile [cpu]" in proc.stdout  # then [demo], [dry_run] and --set on top
    run = Path(summary["run_dir"])
    oof = check_run(run, 10)
    assert len(oof) == pytest.approx(1397 / 5, abs=2)  # one of 5 stratified folds
    frame = validate_file(summary["submission"], tmp_path / "data" / "sample_submission.csv")
    assert list(frame.columns) == ["ImageId", "Label"] and frame["ImageId"].iloc[0] == 1
    assert frame["Label"].between(0, 9).all()
    # the saved fold predicts the test set again, TTA included, to the same numbers
    from kit.config import load_resolved
    from kit.tasks import image

    cfg = load_resolved(run / "config.toml")
    prep = image.prepare(cfg, ROOT / "competitions" / "digit-recognizer", tmp_path / "data",
                         tmp_path / "cache")
    again = image.predict_fold(prep, cfg, run / "fold0", torch.device("cpu"))
    saved = pd.read_parquet(run / "fold0" / "test_pred.parquet")
    assert saved["id"].tolist() == prep.test_ids.tolist()  # fold files name their rows too
    np.testing.assert_allclose(again, saved.drop(columns="id").to_numpy(), atol=1e-5)


def test_mask_demo_dry_run_with_three_heads_and_no_freezing_from_scratch(tmp_path):
    proc, summary = train(tmp_path, "mask", "--set", "model.params.heads=\"multi\"",
                          "--set", "model.params.head_sizes=[3, 2, 3]",
                          "--set", "train.epochs=2", "--set", "train.freeze_epochs=1")
    # the demo's small_cnn has no pretrained weights: there is no backbone to freeze
    assert "train.freeze_epochs = 1 are ignored" in proc.stdout
    run = Path(summary["run_dir"])
    oof = check_run(run, 18)
    assert len(pd.read_csv(run / "fold0" / "history.csv")) == 2
    folds = pd.read_csv(run / "folds.csv")
    person = folds["id"].str.split("/").str[0]
    assert (folds.groupby(person)["fold"].nunique() == 1).all()  # no person in two folds
    assert set(oof["id"].str.split("/").str[0]).isdisjoint(
        set(person[folds["fold"] != 0]))
    frame = validate_file(summary["submission"], tmp_path / "data" / "eval" / "info.csv")
    assert list(frame.columns) == ["ImageID", "ans"] and frame["ans"].between(0, 17).all()
    scores = json.loads((run / "scores.json").read_text())
    assert scores["metric"] == "f1_macro"


def test_two_ranks_shard_the_image_files_with_a_distributed_sampler(tmp_path):
    """torchrun with 2 gloo ranks: each rank loads its share of the photos; the gathered
    OOF holds every validation photo once (the sampler's padding dropped)."""
    proc, summary = train(tmp_path, "mask", "--set", "train.max_steps_per_epoch=0",
                          launcher=("-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node=2"))
    assert "x 2 ranks (DDP)" in proc.stdout
    run = Path(summary["run_dir"])
    oof, folds = pd.read_parquet(run / "oof.parquet"), pd.read_csv(run / "folds.csv")
    assert sorted(oof["id"]) == sorted(folds.loc[folds["fold"] == 0, "id"])
    per_rank = math.ceil((folds["fold"] != 0).sum() / 2)  # 268 train photos over 2 ranks
    steps = pd.read_csv(run / "fold0" / "history.csv")["step"].iloc[0]
    assert steps == per_rank // 32  # batch 32, last partial batch dropped: 4, not 8
    validate_file(summary["submission"], tmp_path / "data" / "eval" / "info.csv")


@pytest.mark.slow
def test_digit_recognizer_demo_learns(tmp_path):
    """A short real run (not --dry-run) on the demo digits: the CNN learns them."""
    summary = tmp_path / "summary.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--comp", "digit-recognizer",
           "--demo", "--data", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"),
           "--submissions", str(tmp_path / "subs"), "--summary-json", str(summary),
           "--fits", "1", "--set", "model.name=lenet", "--set", "train.epochs=6",
           "--set", "train.num_threads=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cv = json.loads(summary.read_text())["cv"]
    assert cv["mean"] > 0.9, cv  # sklearn's 8x8 digits: ~0.97 after 6 epochs


def test_sample_batch_is_the_augmented_batch_de_normalized():
    from kit.config import ImageConfig
    from kit.data.pixels import DeviceBatches, RandomAffine
    from kit.tasks.image import sample_batch

    x = np.random.default_rng(0).integers(0, 256, (70, 1, 28, 28), dtype=np.uint8)
    image = ImageConfig(channels=1, mean=(0.1307,), std=(0.3081,))
    plain = DeviceBatches(x, np.arange(70) % 10, 128, False, 0, "cpu", mean=image.mean,
                          std=image.std)
    batch = sample_batch(plain, image)
    assert batch["x"].shape == (64, 1, 28, 28) and batch["y"].shape == (64,)
    torch.testing.assert_close(batch["x"], torch.as_tensor(x[:64]).float() / 255)
    augmented = DeviceBatches(x, np.arange(70) % 10, 128, False, 0, "cpu", RandomAffine(),
                              mean=image.mean, std=image.std)
    shown = sample_batch(augmented, image)["x"]
    assert shown.min() >= 0 and shown.max() <= 1 and not torch.allclose(shown, batch["x"])


@pytest.mark.parametrize("metric, monitor, followed", [
    ("accuracy", None, "valid_loss"), ("f1_macro", None, "valid_loss"),  # label metrics: noisy
    ("logloss", None, "valid_metric"), ("auc", None, "valid_metric"), ("rmse", None, "valid_metric"),
    ("accuracy", "metric", "valid_metric"), ("logloss", "loss", "valid_loss")])
def test_early_stopping_follows_the_loss_for_a_label_metric_by_default(tmp_path, metric,
                                                                        monitor, followed):
    """train.monitor = "auto" (the default): the validation loss when the metric scores
    labels (the image template stopped at epoch 0 on accuracy while the loss still fell),
    the metric when it is smooth; "metric" and "loss" choose. Before: the metric always."""
    from kit.config import Config, TrainConfig
    from kit.metrics.registry import get_metric
    from kit.objective import Objective
    from kit.training.trainer import Trainer

    train = TrainConfig() if monitor is None else TrainConfig(monitor=monitor)
    scorer = get_metric(metric)
    objective = Objective("regression") if scorer.problem == "regression" else \
        Objective("classification", 3)
    trainer = Trainer(Config(train=train), tmp_path, torch.device("cpu"), scorer, objective)
    row = {"valid_loss": 0.7, "valid_metric": 0.3}
    assert trainer._monitored(row) == row[followed]
    assert trainer._monitor_mode() == ("min" if followed == "valid_loss" else scorer.mode)
