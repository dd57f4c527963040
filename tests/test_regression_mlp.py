"""A tabular MLP regression end to end through the real pieces (build_model, Objective with a
fitted TargetTransform, TensorBatches, Trainer): it must learn a known linear target."""

import math

import numpy as np
import pytest
import torch

from kit.config import Config, OptimConfig, TrainConfig
from kit.data.batches import TensorBatches
from kit.metrics.registry import get_metric
from kit.models import build_model
from kit.objective import Objective, TargetTransform
from kit.training.trainer import Trainer

NOISE = 0.1  # std of the noise added to the target (target units)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def linear_data(n: int = 2000, seed: int = 0):
    """y = 3 x0 - 2 x1 + 100 + noise; x2, x3 are distractors. std(y) = sqrt(9 + 4) = 3.6."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = 3 * x[:, 0].astype(np.float64) - 2 * x[:, 1] + 100 + rng.normal(0, NOISE, n)
    return x, y


def batches(x, y, rows, objective, *, train: bool) -> TensorBatches:
    return TensorBatches({"x_num": x[rows], "x_cat": np.zeros((len(rows), 0), np.int64),
                          "y": objective.batch_target(y[rows]), "index": rows},
                         64, shuffle=train, seed=0, device="cpu", drop_last=train)


def trainer(tmp_path, objective, epochs: int) -> Trainer:
    cfg = Config(optim=OptimConfig(lr=1e-2, weight_decay=0.0),
                 train=TrainConfig(amp="off", epochs=epochs, patience=epochs, warmup_epochs=0.5))
    return Trainer(cfg, tmp_path, torch.device("cpu"), get_metric("rmse", "regression"), objective)


def test_mlp_learns_a_linear_target_to_near_the_noise(tmp_path):
    torch.manual_seed(0)
    x, y = linear_data()
    train_rows, valid_rows = np.arange(1600), np.arange(1600, 2000)
    objective = Objective("regression",
                          target=TargetTransform("none", standardize=True).fit(y[train_rows]))
    model = build_model("mlp", task="tabular", n_numeric=4, cardinalities=[],
                        n_outputs=objective.n_outputs, hidden=[32], dropout=0.0)
    fit = trainer(tmp_path, objective, epochs=12)
    valid = batches(x, y, valid_rows, objective, train=False)
    result = fit.fit(model, batches(x, y, train_rows, objective, train=True), valid, y)
    pred = fit.predict_rows(model, valid, valid_rows)
    assert pred.shape == (400, 1)
    rmse = math.sqrt(np.mean((pred[:, 0] - y[valid_rows]) ** 2))  # original units, by hand
    mean_rmse = y[valid_rows].std()  # predicting the mean: ~3.6
    assert mean_rmse > 3
    assert rmse < 3 * NOISE, (rmse, result.history[-1])  # 0.3: 1/12 of the mean's RMSE
    # the trainer scored the same last-epoch weights on the original scale (not z-scores)
    assert result.history[-1]["valid_metric"] == pytest.approx(rmse, rel=1e-6)
    assert result.best_score == pytest.approx(min(r["valid_metric"] for r in result.history))


def test_a_diverged_regression_stops_on_the_non_finite_metric(tmp_path):
    class Diverged(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x_num, x_cat):
            return x_num[:, :1] * self.w * float("nan")

    x, y = linear_data(128)
    rows = np.arange(128)
    objective = Objective("regression",
                          target=TargetTransform("none", standardize=True).fit(y))
    data = batches(x, y, rows, objective, train=False)
    result = trainer(tmp_path, objective, epochs=3).fit(Diverged(), data, data, y)
    assert "non-finite" in result.stop_reason
