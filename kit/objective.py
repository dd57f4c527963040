"""What the problem kind decides: the head size, the loss, and how outputs become predictions.

One place for it, so the trainer, the tasks and the models never branch on the kind:

    target = TargetTransform("log1p", standardize=True).fit(y_train)   # a regression fold
    objective = Objective.for_config(cfg, classes=[], target=target)
    objective.n_outputs                     # head size: 1 (binary), C (multi-class), 1 (regression)
    loss = objective.loss(outputs, batch["y"])           # y in the model's space
    pred = objective.to_original(objective.predict(outputs).numpy())

Classification: `y` is the class index; predictions are (N, C) probabilities.
A model may return (N, k, outputs): k ensemble members (TabM, kit/models/tabular.py). The
loss is then the mean of the members' losses, each on its own output (a loss on their
average would train one model, not k), and the prediction the mean of the members'
probabilities (or values).
Regression: `y` is the fold's transformed target (log1p if asked, then standardized with
the fold's training rows for networks); predictions are (N, 1) values on the original
scale, so metrics and prediction files never see the model's space.
Several targets in one network (`n_targets` T > 1, model.joint_targets; kit/tasks/joint.py):
`y` is (N, T), one output per target: binary columns get a sigmoid each (BCE, mean over the
T), numbers a value each (MSE / Huber, mean over the T, each column standardized on its
own); predictions are (N, T): each column's probability of class 1, or its value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from kit.errors import DataError


class TargetTransform:
    """A regression target's way into a model and back: optional log1p, then optional
    standardization with the fitting rows' mean and std. Fitted per fold."""

    def __init__(self, kind: str = "none", *, standardize: bool = False) -> None:
        self.kind, self.standardize = kind, standardize
        self.mean, self.std = 0.0, 1.0

    def fit(self, y: np.ndarray) -> TargetTransform:
        """Fitted on (N,) values, or (N, T): each column its own mean and std."""
        t = self._forward(np.asarray(y, np.float64))
        if self.standardize and len(t):
            mean, std = t.mean(0), t.std(0)
            std = np.where(std > 1e-12, std, 1.0)
            self.mean, self.std = (float(mean), float(std)) if t.ndim == 1 else (mean, std)
        return self

    def _forward(self, y: np.ndarray) -> np.ndarray:
        if self.kind == "log1p":
            if (y <= -1).any():
                raise DataError(f"data.target_transform = \"log1p\" needs targets above -1, got "
                                f"{y[y <= -1][:3].tolist()}; use \"none\"")
            return np.log1p(y)
        return y

    def transform(self, y: np.ndarray) -> np.ndarray:
        """Original scale -> the model's space (float64)."""
        return (self._forward(np.asarray(y, np.float64)) - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """The model's space -> original scale (float64)."""
        t = np.asarray(z, np.float64) * self.std + self.mean
        if self.kind == "log1p":
            # exp of a wild prediction overflows to inf; 700 is e^700 ~ 1e304, still finite
            return np.expm1(np.minimum(t, 700.0))
        return t

    def state_dict(self) -> dict:
        return {"kind": self.kind, "standardize": self.standardize,
                "mean": np.asarray(self.mean).tolist(), "std": np.asarray(self.std).tolist()}

    @classmethod
    def from_state(cls, state: dict) -> TargetTransform:
        obj = cls(state["kind"], standardize=state["standardize"])
        mean, std = state["mean"], state["std"]  # lists: one per column of several targets
        obj.mean, obj.std = ((np.asarray(mean, np.float64), np.asarray(std, np.float64))
                             if isinstance(mean, list) else (float(mean), float(std)))
        return obj


@dataclass
class Objective:
    """The problem kind's loss and output mapping for a network (see the module doc)."""

    problem: str  # "classification" or "regression"
    num_classes: int = 0  # classification only
    loss_name: str = "auto"  # optim.loss
    label_smoothing: float = 0.0
    huber_delta: float = 1.0
    target: TargetTransform | None = None  # regression only
    n_targets: int = 1  # outputs of one network trained on several targets (binary or values)

    def __post_init__(self) -> None:
        if self.problem == "regression":
            self.target = self.target or TargetTransform()

    @classmethod
    def for_config(cls, cfg, classes: list, target: TargetTransform | None = None) -> Objective:
        return cls(cfg.competition.problem, len(classes), cfg.optim.loss,
                   cfg.optim.label_smoothing, cfg.optim.huber_delta, target,
                   max(len(cfg.model.joint_targets), 1))

    @classmethod
    def for_fold(cls, cfg, classes: list, y_fit: np.ndarray, *, standardize: bool) -> Objective:
        """A fold's objective: a regression's target transform fitted on the fold's training
        targets `y_fit` (networks also standardize: a unit-scale target suits their init
        and LR; trees and linear models take the log1p'd target as it is)."""
        target = None
        if cfg.competition.problem == "regression":
            target = TargetTransform(cfg.data.target_transform, standardize=standardize)
            target.fit(y_fit)
        return cls.for_config(cfg, classes, target)

    @property
    def regression(self) -> bool:
        return self.problem == "regression"

    @property
    def n_outputs(self) -> int:
        """Binary: one logit (BCE); multi-class: one per class; regression: one value;
        several targets: one each."""
        if self.n_targets > 1:
            return self.n_targets
        return 1 if self.regression or self.num_classes == 2 else self.num_classes

    def loss(self, outputs: torch.Tensor, y: torch.Tensor,
             w: torch.Tensor | None = None) -> torch.Tensor:
        """The batch's mean loss; with `w` (data.weight per row) the weighted mean."""
        if outputs.dim() == 3:  # k members: every row counted once per member
            k = outputs.shape[1]
            return self.loss(outputs.flatten(0, 1), y.repeat_interleave(k, dim=0),
                             None if w is None else w.repeat_interleave(k, dim=0))
        per_row = self._per_row(outputs, y)
        if w is None:
            return per_row.mean()
        w = w.float()
        return (per_row * w).sum() / w.sum().clamp_min(1e-12)

    def _per_row(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of each row (N,): MSE or Huber (a regression), BCE on one logit with
        optional label smoothing toward 0.5 (two classes), cross-entropy (more classes, or
        MixUp / CutMix's soft targets (N, C)); several targets: the mean of theirs."""
        if self.n_targets > 1:  # (N, T) outputs and targets: the mean over the T per row
            return self._elementwise(outputs.float(), y.float()).mean(1)
        if self.regression or self.num_classes == 2:
            return self._elementwise(outputs.float().squeeze(1), y.float())
        soft = y.is_floating_point()  # MixUp / CutMix soft targets (N, C)
        return F.cross_entropy(outputs.float(), y.float() if soft else y.long(),
                               label_smoothing=self.label_smoothing, reduction="none")

    def _elementwise(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One loss per output value: MSE or Huber (a regression), BCE on a logit with
        optional label smoothing toward 0.5 (a binary target)."""
        if self.regression:
            if self.loss_name == "huber":
                return F.huber_loss(out, target, delta=self.huber_delta, reduction="none")
            return F.mse_loss(out, target, reduction="none")
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(out, target, reduction="none")

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, C), or (N, 1) values in the model's space (a regression); for
        (N, k, outputs) the mean over the k members."""
        if outputs.dim() == 3:
            n, k = outputs.shape[:2]
            return self.predict(outputs.flatten(0, 1)).view(n, k, -1).mean(1)
        outputs = outputs.float()
        if self.regression:
            return outputs[:, :self.n_targets]
        if self.n_targets > 1:  # each column's probability of class 1
            return torch.sigmoid(outputs)
        if self.num_classes == 2:
            p = torch.sigmoid(outputs.squeeze(1))
            return torch.stack([1 - p, p], dim=1)
        return outputs.softmax(1)

    def to_original(self, pred: np.ndarray) -> np.ndarray:
        """`predict`'s output as the prediction files hold it (original scale)."""
        return self.target.inverse(pred) if self.regression else pred

    def batch_target(self, y: np.ndarray) -> np.ndarray:
        """The `y` a loader yields: class indices, or the transformed regression target."""
        if self.regression:
            return self.target.transform(y).astype(np.float32)
        if self.n_targets > 1:  # (N, T) 0/1 labels, BCE's float targets
            return np.asarray(y, np.float32)
        return np.asarray(y, np.int64)


def check_target(problem: str, values, column: str, source: str) -> None:
    """Refuse a target that does not fit the problem kind, before the first fold.

    A classification target that is numeric with more distinct values than max(20, 5 % of
    the rows) looks continuous; a regression target must be numeric and finite."""
    import pandas as pd

    values = pd.Series(values)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if problem == "classification":
        distinct, limit = values.nunique(), max(20, int(0.05 * len(values)))
        if numeric and distinct > limit:
            raise DataError(
                f"{source}: target {column!r} has {distinct} distinct numeric values in "
                f"{len(values)} rows (a classification allows at most {limit}); it looks "
                "continuous: set competition.problem = \"regression\" with a regression metric "
                "(rmse, rmsle, mae, r2)")
        return
    fix = "set competition.problem = \"classification\""
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{source}: target {column!r} is not numeric (true/false values); a "
                        f"regression needs numbers: {fix}")
    if not numeric:
        bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
        rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
        where = (f"rows {rows}: {values.iloc[rows].tolist()}" if rows else
                 f"numbers stored as text, dtype {values.dtype}: convert them in features.py")
        raise DataError(f"{source}: target {column!r} is not numeric ({where}); a regression "
                        f"needs numbers: fix those rows, or {fix}")
    finite = np.isfinite(values.to_numpy(np.float64, na_value=np.nan))
    if not finite.all():
        rows = np.flatnonzero(~finite)[:5].tolist()
        raise DataError(f"{source}: target {column!r} is not finite in rows {rows} (missing or "
                        "inf); drop or fix those rows")
