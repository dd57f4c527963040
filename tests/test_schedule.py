import math

import pytest

from kit.training.schedule import lr_at, warn_if_frozen

KW = dict(lr=1e-3, total_steps=110, warmup_steps=10, min_lr=1e-5)


def test_warmup_is_linear_and_reaches_lr_at_its_end():
    assert lr_at(0, **KW) == pytest.approx(1e-4)
    assert lr_at(4, **KW) == pytest.approx(5e-4)
    assert lr_at(9, **KW) == pytest.approx(1e-3)
    assert lr_at(10, **KW) == pytest.approx(1e-3)  # cosine starts at the base LR


def test_cosine_halfway_and_floor():
    assert lr_at(60, **KW) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert lr_at(110, **KW) == pytest.approx(1e-5)
    assert lr_at(500, **KW) == pytest.approx(1e-5)  # past the end: stays at the floor
    assert min(lr_at(s, **KW) for s in range(200)) >= 1e-5


def test_monotone_after_warmup_and_no_warmup_case():
    values = [lr_at(s, **KW) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_at(0, lr=1.0, total_steps=4, warmup_steps=0, min_lr=0.0) == 1.0
    assert lr_at(2, lr=1.0, total_steps=4, warmup_steps=0, min_lr=0.0) == pytest.approx(
        0.5 * (1 + math.cos(math.pi / 2)))


def test_zero_floor_is_warned():
    with pytest.warns(UserWarning, match="min_lr = 0"):
        warn_if_frozen(0.0)
