import math

import pytest

from kit.training.early_stopping import EarlyStopping


def run(values, **kw):
    stopper = EarlyStopping(**kw)
    for epoch, value in enumerate(values):
        stopper.step(value, epoch)
        if stopper.stopped:
            return epoch, stopper
    return None, stopper


def test_max_mode_stops_on_the_patience_th_bad_epoch():
    stop, s = run([0.5, 0.6, 0.6, 0.59, 0.6, 0.7], patience=3, mode="max")
    assert stop == 4 and s.best_epoch == 1 and s.best == 0.6  # ties do not improve


def test_min_mode_and_improvement_resets_wait():
    stop, s = run([1.0, 0.9, 0.95, 0.8, 0.85, 0.86], patience=2, mode="min")
    assert stop == 5 and s.best_epoch == 3


def test_absolute_min_delta():
    stop, s = run([0.5, 0.505, 0.509, 0.52], patience=2, mode="max", min_delta=0.01)
    assert stop == 2 and s.best_epoch == 0


def test_relative_min_delta():
    # 1% of 2.0 = 0.02: 1.985 is not enough of an improvement in min mode
    stop, s = run([2.0, 1.985, 1.99, 1.5], patience=2, mode="min", min_delta=0.01,
                  min_delta_mode="rel")
    assert stop == 2 and s.best_epoch == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_stops_at_once_with_reason(bad):
    stop, s = run([0.3, bad, 0.9], patience=5, mode="min")
    assert stop == 1 and "non-finite" in s.reason and s.best_epoch == 0


def test_state_dict_round_trip_continues_identically():
    a = EarlyStopping(patience=3, mode="max")
    for e, v in enumerate([0.1, 0.3, 0.2]):
        a.step(v, e)
    b = EarlyStopping(patience=3, mode="max")
    b.load_state_dict(a.state_dict())
    for e, v in enumerate([0.25, 0.29], start=3):
        a.step(v, e), b.step(v, e)
    assert a.stopped and b.stopped and a.state_dict() == b.state_dict()


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(patience=1, mode="up")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
