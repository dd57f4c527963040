"""Task adapters: what differs between a tabular and an image competition.

The run loop (kit/pipeline/) is the same for every competition; on the in-memory path
it calls three functions of the task module named by `competition.task`:

    prepare(cfg, comp_dir, data_dir, cache_dir) -> Prepared
    fit_fold(prep, ctx: FoldContext) -> FoldOutput
    predict_fold(prep, cfg, fold_dir, device) -> test predictions (FoldOutput.test_pred)

and, for a refit on all rows (kit/pipeline/refit.py), kit/tasks/<task>/refit.py's
refit_fold(prep, ctx) where the task has one (refit_module; tabular only).

The fold boundary is typed both ways: FoldContext is all a fold is handed (its rows, its
folder, the run's metric, deadline, tracker and resume flag; `ctx.trainer(cfg, objective)`
builds a network's Trainer from them), FoldOutput all it hands back (predictions, info,
the history rows the curves are drawn from, the importance table, an image task's first
augmented batch). A task never calls back into the run loop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from kit.config import Config
from kit.metrics.registry import Metric
from kit.objective import Objective
from kit.training.trainer import Trainer


@dataclass
class Prepared:
    ids: np.ndarray  # train row ids (oof.parquet `id`)
    y: np.ndarray  # int64 class index per train row, or float64 value (a regression)
    classes: list  # index -> original label; empty for a regression
    groups: np.ndarray | None  # group per train row (folds never split one), or None
    test_ids: np.ndarray  # ids for the submission's id column
    state: Any = None  # task-private
    # the resolved feature lists, plain JSON: {"numeric": [...], "categorical": [...]} for a
    # table ("auto" as it came out today), {} for images. A run stores them, and explicit
    # lists in its config.toml are taken as they are, so it predicts alike next month.
    features: dict = field(default_factory=dict)
    # cv.time's parsed values per train row (float64 / datetime64[ns]) under
    # cv.strategy = "time" (kit/splits/time.py read_times), else None
    times: np.ndarray | None = None
    # data.weight's values per train row (float64), or None: every row counts once
    weight: np.ndarray | None = None
    # cv.stratify_on's columns per train row, which the split follows instead of `y` (a run
    # with several targets: all of them, so each target's run gets the same split), or None
    strata: np.ndarray | None = None


@dataclass(frozen=True)
class FoldContext:
    """What the run hands one fold fit."""

    cfg: Config
    fold: int  # the fold fit: repeat fold // cv.n_splits, fold fold % cv.n_splits
    train_idx: np.ndarray | None
    valid_idx: np.ndarray | None  # None, None out of core: a fold scans its rows by `_fold`
    fold_dir: Path
    device: Any  # torch.device
    metric: Metric  # the run's (a built-in, or the competition's metric.py)
    deadline: float | None = None  # time.monotonic() value the run must finish by
    tracker: Any = None  # kit.training.track: NullTracker / WandbTracker (None: off)
    resume: bool = False  # continue an interrupted fit from its last.pt
    # a refit on all training rows (kit/pipeline/refit.py): train_idx every row, valid_idx
    # empty, a fixed length from `cfg` (rounds / epochs), no early stopping, no OOF rows
    refit: bool = False

    def trainer(self, cfg: Config, objective: Objective) -> Trainer:
        """The fold's Trainer: `cfg` as the task resolved it for the fold, `objective` the
        fold's loss and outputs."""
        return Trainer(cfg, self.fold_dir, self.device, self.metric, objective,
                       deadline=self.deadline, tracker=self.tracker,
                       desc=f"refit {self.fold_dir.name}" if self.refit else f"fold {self.fold}")


@dataclass
class FoldOutput:
    """What one fold fit hands back."""

    valid_pred: np.ndarray | None  # (len(valid_idx), C) probabilities or (.., 1) values;
    test_pred: np.ndarray | None  # (n_test, C) or (n_test, 1), original scale; None: the
    # fold wrote them to its files batch by batch (out of core)
    info: dict = field(default_factory=dict)  # best epoch, stop reason, seconds (done.json)
    history: list[dict] = field(default_factory=list)  # per epoch, or per boosting round
    importance: pd.DataFrame | None = None  # tree libraries: feature, importance, type
    sample_batch: dict | None = None  # image fold 0: its first augmented batch, de-normalized


@dataclass
class RunScores:
    """What a run path hands the run loop once its folds are in: the scores it reports and
    the scores.json fields only it knows (kit/pipeline/loop.py writes the file)."""

    fold_scores: list[float]  # per fold fit, as reported (qwk: labels cut on the other folds)
    oof: float  # the metric over the run's OOF rows
    repeat_means: list[float]  # the mean of each repeat whose folds all finished
    split: str  # the split's hash (folds.csv), or "hash:<key>:<K>:<seed>" out of core
    fields: dict = field(default_factory=dict)  # more scores.json fields, after fold_info
    oof_rows: int | None = None  # rows the OOF covers (None: not recorded, every row)
    rows: int = 0  # training rows


def refit_module(name: str) -> ModuleType | None:
    """kit/tasks/<name>/refit.py (refit_fold(prep, ctx) -> FoldOutput: one model on all
    training rows), or None: the task cannot refit."""
    try:
        return importlib.import_module(f"kit.tasks.{name}.refit")
    except ModuleNotFoundError as exc:
        if exc.name != f"kit.tasks.{name}.refit":
            raise
        return None


def get_task(name: str) -> ModuleType:
    """The module with prepare / fit_fold / predict_fold: kit/tasks/<name>.py, or
    kit/tasks/<name>/task.py for a task that is a package."""
    module = importlib.import_module(f"kit.tasks.{name}")
    if hasattr(module, "__path__"):
        module = importlib.import_module(f"kit.tasks.{name}.task")
    return module
