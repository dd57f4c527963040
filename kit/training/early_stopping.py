"""Early stopping that decides and nothing else (no files, no printing).

Semantics (pinned by tests):
- mode "max" or "min"; an epoch improves when it beats the best by more than min_delta
  (absolute, or relative to |best| when min_delta_mode == "rel"); ties do not improve;
- `wait` counts epochs since the last improvement; stop when wait >= patience, so
  patience=3 stops on the third non-improving epoch in a row;
- a non-finite metric (NaN, inf) stops at once, with the reason.
"""

from __future__ import annotations

import math


class EarlyStopping:
    def __init__(self, *, patience: int, mode: str = "max", min_delta: float = 0.0,
                 min_delta_mode: str = "abs"):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if min_delta_mode not in ("abs", "rel"):
            raise ValueError(f"min_delta_mode must be 'abs' or 'rel', got {min_delta_mode!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.mode = patience, mode
        self.min_delta, self.min_delta_mode = abs(min_delta), min_delta_mode
        self.best: float | None = None
        self.best_epoch = -1
        self.wait = 0
        self.stopped = False
        self.reason = ""

    def improves(self, value: float) -> bool:
        if self.best is None:
            return True
        margin = self.min_delta * (abs(self.best) if self.min_delta_mode == "rel" else 1.0)
        if self.mode == "max":
            return value > self.best + margin
        return value < self.best - margin

    def is_better(self, value: float, other: float) -> bool:
        """Whether `value` beats `other` in this mode (a finite value beats a NaN; ties do
        not): which of two weights' scores an epoch counts."""
        if not math.isfinite(value):
            return False
        if not math.isfinite(other):
            return True
        return value > other if self.mode == "max" else value < other

    def step(self, value: float, epoch: int) -> bool:
        """Record an epoch's metric; return True when this epoch is the new best."""
        if not math.isfinite(value):
            self.stopped = True
            self.reason = f"metric is {value} at epoch {epoch} (non-finite)"
            return False
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped = True
            self.reason = (
                f"no improvement for {self.wait} epochs (patience {self.patience}); "
                f"best {self.best:.6g} at epoch {self.best_epoch}"
            )
        return False

    def state_dict(self) -> dict:
        keys = ("best", "best_epoch", "wait", "stopped", "reason")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
