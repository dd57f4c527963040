"""MixUp / CutMix (kit/data/mixing.py): soft targets on training batches only."""

import numpy as np
import pytest
import torch

from kit.data.mixing import BatchMix
from kit.objective import Objective


def batch(n=16, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 3, 8, 8, generator=g),
            "y": torch.randint(0, classes, (n,), generator=g), "index": torch.arange(n)}


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_multiclass_targets_are_soft_rows_summing_to_one(mixup, cutmix):
    torch.manual_seed(0)
    b = batch()
    out = BatchMix(5, mixup=mixup, cutmix=cutmix)(b)
    assert out["y"].shape == (16, 5) and out["y"].dtype == torch.float32
    torch.testing.assert_close(out["y"].sum(1), torch.ones(16))
    assert (out["y"] > 0).sum(1).max() == 2  # two labels share each row
    assert not torch.equal(out["x"], b["x"])
    torch.testing.assert_close(out["index"], b["index"])  # rows keep their positions
    # each row's target puts the rolled-in label's share where its own label is not
    own = out["y"][torch.arange(16), b["y"]]
    assert ((own > 0) & (own <= 1)).all()


def test_a_binary_head_gets_the_mixed_positive_share():
    torch.manual_seed(0)
    b = batch(classes=2)
    out = BatchMix(2, mixup=0.4)(b)
    assert out["y"].shape == (16,)
    assert ((out["y"] >= 0) & (out["y"] <= 1)).all()
    assert ((out["y"] > 0) & (out["y"] < 1)).any()
    loss = Objective("classification", 2).loss(torch.zeros(16, 1), out["y"])
    assert loss.item() == pytest.approx(np.log(2), rel=1e-6)  # BCE of p = 0.5 at any target


def test_soft_targets_train_through_the_objectives_cross_entropy():
    torch.manual_seed(0)
    out = BatchMix(5, cutmix=1.0)(batch())
    logits = torch.randn(16, 5)
    by_hand = -(out["y"] * torch.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(Objective("classification", 5).loss(logits, out["y"]), by_hand)


def test_mix_prob_zero_leaves_every_batch_alone():
    b = batch()
    assert BatchMix(5, mixup=0.4, prob=0.0)(b) is b


def test_the_trainer_mixes_training_batches_and_never_validation_ones(tmp_path):
    """Trainer.train_batch_transform sees every training batch, and no batch of predict."""
    from kit.config import Config, TrainConfig
    from kit.metrics.registry import get_metric
    from kit.training.trainer import Trainer

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 8 * 8, 5)

        def forward(self, x):
            return self.fc(x.flatten(1))

    seen = []

    def spy(b):
        seen.append(b["y"].dtype)
        return BatchMix(5, mixup=0.4)(b)

    cfg = Config(train=TrainConfig(amp="off", epochs=1, warmup_epochs=0))
    trainer = Trainer(cfg, tmp_path, torch.device("cpu"), get_metric("accuracy"),
                      Objective("classification", 5))
    trainer.train_batch_transform = spy
    batches = [batch(seed=s) for s in range(3)]
    result = trainer.fit(Tiny(), batches, batches, np.concatenate([b["y"] for b in batches]))
    assert seen == [torch.int64] * 3 and len(result.history) == 1


@pytest.mark.parametrize(("overrides", "problem", "fragment"), [
    (["image.mixup=0.2"], "regression", "image.mixup = 0.2 on a regression"),
    (["image.cutmix=-1.0"], "classification", "image.cutmix = -1.0: give the Beta alpha"),
    (["image.mixup=0.2", "image.mix_prob=1.5"], "classification", "image.mix_prob = 1.5"),
])
def test_bad_mix_settings_are_config_errors(overrides, problem, fragment):
    from kit.config import CompetitionConfig, Config, apply_overrides
    from kit.errors import ConfigError

    cfg = Config(competition=CompetitionConfig(task="image", problem=problem,
                                               metric="rmse" if problem == "regression"
                                               else "accuracy"))
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        apply_overrides(cfg, overrides)


def test_a_digit_recognizer_dry_run_trains_with_mixup_and_cutmix(tmp_path):
    from kit.cli import train_main

    summary = train_main(["--comp", "digit-recognizer", "--demo", "--dry-run",
                          "--data", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"),
                          "--submissions", str(tmp_path / "subs"),
                          "--set", "image.mixup=0.2", "--set", "image.cutmix=1.0"])
    assert summary["cv"]["fold_scores"] and np.isfinite(summary["cv"]["mean"])
