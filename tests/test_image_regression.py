"""An image regression through the image task's real pieces (layout.py hook -> prepare ->
fit_fold: DeviceBatches, small_cnn with a one-output head, Trainer): generated images whose
target is their mean brightness."""

import json
import math

import numpy as np
import pytest
import torch

from kit.config import CompetitionConfig, Config, ImageConfig, ModelConfig, OptimConfig, TrainConfig
from kit.errors import DataError
from kit.metrics.registry import get_metric
from kit.models.vision import build_image_model
from kit.tasks import FoldContext, image

LAYOUT = '''
import numpy as np
from kit.data.images import ImageData, ImageSet


def load(data, data_dir, cache_dir):
    z = np.load(data_dir / "images.npz")
    train = ImageSet(ids=np.arange(len(z["x"])), labels=z["y"], pixels=z["x"])
    test = ImageSet(ids=np.arange(len(z["x_test"])), pixels=z["x_test"])
    return ImageData(train, test, [])
'''


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def brightness_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 n x 1 x 16 x 16: a uniform level in 0.1..0.9 of full scale plus pixel noise (std
    20 of 255); the target is each image's actual mean pixel value in 0..1 units."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.1, 0.9, (n, 1, 1, 1)) * 255
    x = np.clip(np.round(level + rng.normal(0, 20, (n, 1, 16, 16))), 0, 255).astype(np.uint8)
    return x, x.reshape(n, -1).mean(1) / 255


def competition(tmp_path, labels=None):
    comp, data = tmp_path / f"brightness_{tmp_path.name}", tmp_path / "data"
    comp.mkdir()
    data.mkdir()
    (comp / "layout.py").write_text(LAYOUT)
    x, y = brightness_images(480, seed=0)
    np.savez(data / "images.npz", x=x, y=y if labels is None else labels, x_test=x[:40])
    return comp, data


def config(epochs: int = 8) -> Config:
    return Config(
        competition=CompetitionConfig(task="image", problem="regression", metric="rmse"),
        image=ImageConfig(channels=1, mean=(0.5,), std=(0.25,),
                          augment={"affine": 0.0}),  # zero padding would darken
        model=ModelConfig(name="small_cnn", params={"width": 8}),
        optim=OptimConfig(lr=3e-3),
        train=TrainConfig(amp="off", epochs=epochs, patience=epochs, batch_size=32,
                          warmup_epochs=0.5))


def test_small_cnn_builds_a_one_output_head():
    model = build_image_model("small_cnn", 0, in_chans=1, outputs=1, params={"width": 8})
    assert model.fc.out_features == 1
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 1)


def test_cnn_learns_mean_brightness_far_better_than_the_mean(tmp_path):
    comp, data = competition(tmp_path)
    cfg = config()
    prep = image.prepare(cfg, comp, data, tmp_path / "cache")
    assert prep.classes == [] and prep.y.dtype == np.float64
    train_idx, valid_idx = np.arange(360), np.arange(360, 480)
    fold_dir = tmp_path / "fold0"
    fold_dir.mkdir()
    ctx = FoldContext(cfg, 0, train_idx, valid_idx, fold_dir, torch.device("cpu"),
                      get_metric("rmse", "regression"))
    out = image.fit_fold(prep, ctx)
    y_valid = prep.y[valid_idx]
    assert out.valid_pred.shape == (120, 1) and out.test_pred.shape == (40, 1)
    rmse = math.sqrt(np.mean((out.valid_pred[:, 0] - y_valid) ** 2))
    mean_rmse = math.sqrt(np.mean((prep.y[train_idx].mean() - y_valid) ** 2))  # ~0.23
    assert mean_rmse > 0.15
    assert rmse < 0.25 * mean_rmse, (rmse, mean_rmse, out.info)  # reaches ~0.01
    # the fold's target transform is saved; the test predictions come back on the 0..1 scale
    state = json.loads((fold_dir / "target.json").read_text())
    assert state["mean"] == pytest.approx(prep.y[train_idx].mean())
    test_rmse = math.sqrt(np.mean((out.test_pred[:, 0] - prep.y[:40]) ** 2))
    assert test_rmse < 0.25 * mean_rmse


def test_a_missing_image_regression_target_is_refused_before_training(tmp_path):
    _, y = brightness_images(480, seed=0)
    y[7] = np.nan
    comp, data = competition(tmp_path, labels=y)
    with pytest.raises(DataError, match=r"not finite in rows \[7\]"):
        image.prepare(config(), comp, data, tmp_path / "cache")


def test_fine_tuning_controls_are_ignored_without_pretrained_weights(capsys):
    from dataclasses import replace

    from kit.config import Config
    from kit.tasks.image import fine_tuning_config

    cfg = Config()
    cfg = cfg.replace(model=replace(cfg.model, name="small_cnn", pretrained=False),
                      optim=replace(cfg.optim, backbone_lr_mult=0.1),
                      train=replace(cfg.train, freeze_epochs=2))
    used = fine_tuning_config(cfg)
    assert (used.optim.backbone_lr_mult, used.train.freeze_epochs) == (1.0, 0)
    out = capsys.readouterr().out
    assert "backbone_lr_mult = 0.1 and train.freeze_epochs = 2 are ignored" in out
    assert "no pretrained weights" in out and len(out.strip().splitlines()) == 1
    pretrained = cfg.replace(model=replace(cfg.model, pretrained=True))
    assert fine_tuning_config(pretrained) is pretrained  # a backbone to fine-tune: kept
    assert capsys.readouterr().out == ""
