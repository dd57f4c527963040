"""A tabular fold's model, the pieces the in-memory task (task.py) and the out-of-core
run (kit/out_of_core/) share: the batch size rule, the transform a network reads, the
numeric bins, building any kind, and the boosters' frames, predictions and records.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import Config
from kit.data.bins import NumericBins
from kit.data.tabular import CategoricalPreprocessor, NumericPreprocessor
from kit.models import MODELS, build_model
from kit.objective import Objective
from kit.run_folder import write_fold_importance, write_history
from kit.tasks import FoldOutput
from kit.tasks.tabular.tables import ROW
from kit.training.checkpoints import load_checkpoint
from kit.training.importance import fold_importance


def batch_size_for(rows: int) -> int:
    """`train.batch_size = 0`: a power of two near rows / 25, from 32 to 1,024: 32 for
    Titanic's and House Prices' folds (700-900 rows), 1,024 from about 18,000 rows (the
    synthetic table's 533,000). tabm scored within noise at 32, 64 and 128 on both
    (docs/models.md, TabM), so the rule only keeps steps per epoch in a sensible range."""
    return int(np.clip(2 ** round(np.log2(max(rows, 1) / 25)), 32, 1024))


def sized(cfg: Config, rows: int) -> Config:
    """The config with `train.batch_size = 0` resolved for `rows` training rows."""
    if cfg.train.batch_size:
        return cfg
    return cfg.replace(train=dataclasses.replace(cfg.train, batch_size=batch_size_for(rows)))


class TabularTransform:
    """Fitted preprocessors applied to one chunk (a DataFrame) at a time; picklable.
    With an objective, `y` is the target in the model's space (kit/objective.py): the
    chunk's `_y`, or its rows of `labels` (a network's (N, T) targets, by row position)."""

    def __init__(self, num: NumericPreprocessor, cat: CategoricalPreprocessor,
                 objective: Objective | None = None, labels: np.ndarray | None = None):
        self.num, self.cat, self.objective, self.labels = num, cat, objective, labels

    def __call__(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        out = {"x_num": self.num.transform(frame), "x_cat": self.cat.transform(frame),
               "index": frame[ROW].to_numpy(np.int64)}
        if self.objective is not None:
            y = (frame["_y"].to_numpy() if self.labels is None else
                 self.labels[frame[ROW].to_numpy()])
            out["y"] = self.objective.batch_target(y)
            if "_w" in frame.columns:  # data.weight: the loss weighs each row by it
                out["w"] = frame["_w"].to_numpy(np.float32)
        return out


def fit_bins(cfg: Config, entry, num, train: pd.DataFrame) -> NumericBins | None:
    """Numeric bins for a model that embeds numbers piecewise-linearly (takes `bins`),
    fitted on the fold's training rows as the network sees them."""
    takes = inspect.signature(entry.builder).parameters
    if "bins" not in takes:
        return None
    n_bins = cfg.model.params_for(entry.name).get("n_bins", takes["n_bins"].default)
    return NumericBins(n_bins).fit(num.transform(train))


def build_fold_model(cfg: Config, entry, num, cat, objective: Objective, device,
                     bins: NumericBins | None = None):
    params = cfg.model.params_for(entry.name)
    takes = inspect.signature(entry.builder).parameters
    # what the run decides for the tree libraries: the model seed, the threads
    # (train.num_threads, 0 = kit.runtime.threads' rule: the boosters size each fit from its table,
    # the forests take the usable cores), the device (XGBoost and CatBoost train on a GPU
    # with --device cuda)
    for key, value in (("seed", cfg.train.seed), ("num_threads", cfg.train.num_threads),
                       ("device", device.type)):
        if key in takes and entry.kind != "torch":
            params.setdefault(key, value)
    members = {name: cfg.model.params_for(name) for name in MODELS}
    return build_model(entry.name, task="tabular", n_numeric=len(num.columns),
                       cardinalities=cat.cardinalities, n_outputs=objective.n_outputs,
                       problem=objective.problem, member_params=members,
                       bins=None if bins is None else bins.edges, **params)


def load_best(model, path: Path) -> None:
    model.load_state_dict(load_checkpoint(path)["model"])


def booster_frame(frame: pd.DataFrame, num, cat) -> pd.DataFrame:
    """The rows for a tree library: raw numerics (NaN kept) and the fold's category codes
    as pandas categories (the same categories in every part). Columns are the feature
    names, made safe for LightGBM's and XGBoost's rules."""
    x, codes = num.values(frame), cat.transform(frame)
    names = safe_names([*num.columns, *cat.columns])
    columns = {name: x[:, j] for j, name in enumerate(names[:len(num.columns)])}
    for j, (name, size) in enumerate(zip(names[len(num.columns):], cat.cardinalities,
                                         strict=True)):
        columns[name] = pd.Categorical.from_codes(codes[:, j], categories=pd.RangeIndex(size))
    return pd.DataFrame(columns)


def safe_names(names: list[str]) -> list[str]:
    """Letters, digits and _ only; a name two columns share gets the column's position."""
    out = [re.sub(r"\W", "_", str(n)) or "f" for n in names]
    return [n if out.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(out)]


def save_booster(model, fold_dir: Path, num, cat) -> FoldOutput:
    """A fitted booster's model file, history.csv (validation loss per round) and
    importance.csv; the fold's record without its predictions (info, history, importance)."""
    model.save(fold_dir / model.file_name)
    history = [{"round": r, f"valid_{model.loss_name}": loss}
               for r, loss in enumerate(model.history, start=1)]
    write_history(fold_dir, history)
    features = [*num.columns, *cat.columns]
    importance = fold_importance(features, model.importance(safe_names(features)),
                                 model.importance_type)
    write_fold_importance(fold_dir, importance)
    stopped = len(model.history) < model.rounds
    info = {"model_file": model.file_name, "best_iteration": model.best_iteration,
            "rounds": len(model.history), "threads": model.library_threads(),
            "stop_reason": f"best round {model.best_iteration} of {len(model.history)}"
                           + (" (early stopping)" if stopped else " (round budget reached)")}
    return FoldOutput(None, None, info, history=history, importance=importance)


def booster_predict(model, frame: pd.DataFrame, objective: Objective) -> np.ndarray:
    out = model.predict(frame)
    return objective.to_original(out[:, None]) if objective.regression else out
