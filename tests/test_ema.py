"""train.ema_decay: an exponential moving average of the weights (timm's ModelEmaV3) kept by
the Trainer, validated beside the raw weights each epoch, saved with last.pt for --resume."""

import numpy as np
import pytest
import torch

from kit.config import Config, OptimConfig, TrainConfig
from kit.data.batches import TensorBatches
from kit.errors import CheckpointError, ConfigError
from kit.metrics.registry import get_metric
from kit.models import build_model
from kit.objective import Objective, TargetTransform
from kit.training.checkpoints import load_checkpoint
from kit.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, 2 * x[:, 0].astype(np.float64) - x[:, 1] + rng.normal(0, 0.1, n)


def setup(tmp_path, *, decay: float, epochs: int, n: int = 96, batch: int = 32, lr=1e-2):
    x, y = data(n)
    objective = Objective("regression", target=TargetTransform("none").fit(y))
    cfg = Config(optim=OptimConfig(lr=lr, weight_decay=0.0),
                 train=TrainConfig(amp="off", epochs=epochs, patience=epochs, warmup_epochs=0,
                                   ema_decay=decay, batch_size=batch))
    trainer = Trainer(cfg, tmp_path, torch.device("cpu"), get_metric("rmse", "regression"),
                      objective)

    def loader(shuffle: bool):
        return TensorBatches({"x_num": x, "x_cat": np.zeros((n, 0), np.int64),
                              "y": objective.batch_target(y), "index": np.arange(n)},
                             batch, shuffle=shuffle, seed=0, device="cpu")

    torch.manual_seed(0)
    model = build_model("mlp", task="tabular", n_numeric=3, cardinalities=[], n_outputs=1,
                        hidden=[8], dropout=0.0)
    return trainer, model, loader, y


def test_the_ema_equals_a_hand_computed_average_after_three_steps(tmp_path):
    """Three optimizer steps (one epoch of three batches), decay 0.5 with timm's warm-up:
    step s averages with d_s = min(0.5, 1 - s' ^ (-2/3)), s' = s (d_1 = 0: a copy)."""
    trainer, model, loader, y = setup(tmp_path, decay=0.5, epochs=1)
    after_steps = []
    from torch.optim.optimizer import register_optimizer_step_post_hook

    hook = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: after_steps.append(
            {k: v.detach().clone() for k, v in model.state_dict().items()}))
    try:
        trainer.fit(model, loader(True), loader(False), y)
    finally:
        hook.remove()
    assert len(after_steps) == 3
    ema = dict(after_steps[0])  # step 1: decay 0, the weights themselves
    for step, weights in enumerate(after_steps[1:], start=2):
        d = min(0.5, 1 - step ** (-2 / 3))
        ema = {k: d * ema[k] + (1 - d) * weights[k] if v.is_floating_point() else weights[k]
               for k, v in weights.items()}
    assert d == 0.5 and 0 < min(0.5, 1 - 2 ** (-2 / 3)) < 0.5  # the warm-up was in play
    kept = trainer.ema.module.state_dict()
    for key, value in ema.items():
        torch.testing.assert_close(kept[key], value, rtol=1e-6, atol=1e-7)
    raw = model.state_dict()
    assert not torch.allclose(kept["head.weight"], raw["head.weight"])


def test_both_weights_are_validated_and_the_better_one_is_kept(tmp_path):
    # a high LR: the raw weights wander, so the EMA wins some epochs and loses others
    trainer, model, loader, y = setup(tmp_path, decay=0.9, epochs=4, lr=1.0)
    result = trainer.fit(model, loader(True), loader(False), y)
    for row in result.history:
        assert {"valid_metric", "ema_valid_metric", "weights"} <= set(row)
        better = min(row["valid_metric"], row["ema_valid_metric"])
        assert row["weights"] == ("ema" if row["ema_valid_metric"] < row["valid_metric"] else "raw")
        if row["epoch"] == result.best_epoch:
            assert result.best_score == pytest.approx(better)
    assert {row["weights"] for row in result.history} == {"raw", "ema"}  # both were kept
    best = load_checkpoint(result.best_path)
    assert best["meta"]["weights"] == result.history[result.best_epoch]["weights"]
    assert best["meta"]["score"] == pytest.approx(result.best_score)


def test_resume_restores_the_ema(tmp_path):
    """A 4-epoch run stopped after epoch 1 and resumed ends with the EMA of an
    uninterrupted one."""
    whole, model, loader, y = setup(tmp_path / "whole", decay=0.8, epochs=4)
    whole.fit(model, loader(True), loader(False), y)

    def stop_at_epoch_two(model, epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    first, model2, loader2, y2 = setup(tmp_path / "parts", decay=0.8, epochs=4)
    with pytest.raises(KeyboardInterrupt):
        first.fit(model2, loader2(True), loader2(False), y2, on_epoch_start=stop_at_epoch_two)
    assert "ema" in torch.load(tmp_path / "parts" / "last.pt", weights_only=True)
    second, model3, loader3, y3 = setup(tmp_path / "parts", decay=0.8, epochs=4)
    second.fit(model3, loader3(True), loader3(False), y3, resume=True)
    for key, value in whole.ema.module.state_dict().items():
        torch.testing.assert_close(second.ema.module.state_dict()[key], value)


def test_resume_without_ema_weights_is_refused(tmp_path):
    first, model, loader, y = setup(tmp_path, decay=0.0, epochs=1)
    first.fit(model, loader(True), loader(False), y)
    second, model2, loader2, y2 = setup(tmp_path, decay=0.9, epochs=2)
    with pytest.raises(CheckpointError, match="holds no EMA weights"):
        second.fit(model2, loader2(True), loader2(False), y2, resume=True)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_ema_decay_outside_zero_one_is_an_error(decay):
    from kit.config import validate

    with pytest.raises(ConfigError, match=rf"train.ema_decay = {decay}: use 0 \(off\)"):
        validate(Config(train=TrainConfig(ema_decay=decay)), "config.toml")
