"""Task adapters: what differs between a tabular and an image competition.

The CV pipeline (kit/pipeline.py) is the same for every competition; it calls three
functions of the task module named by `competition.task`:

    prepare(cfg, comp_dir, data_dir, cache_dir) -> Prepared
    fit_fold(prep, ctx: FoldContext) -> FoldOutput
    predict_fold(prep, cfg, fold_dir, device) -> test predictions (FoldOutput.test_pred)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from kit.config import Config


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


@dataclass
class FoldContext:
    cfg: Config
    fold: int
    train_idx: np.ndarray
    valid_idx: np.ndarray
    fold_dir: Path
    device: Any  # torch.device
    make_trainer: Callable[..., Any]  # (cfg, fold_dir, device, *, objective) -> Trainer
    extras: dict = field(default_factory=dict)


@dataclass
class FoldOutput:
    valid_pred: np.ndarray  # (len(valid_idx), C) probabilities or (len(valid_idx), 1) values
    test_pred: np.ndarray  # (n_test, C) or (n_test, 1), original scale
    info: dict = field(default_factory=dict)  # best epoch, stop reason, seconds


def get_task(name: str) -> ModuleType:
    """The module with prepare / fit_fold / predict_fold: kit/tasks/<name>.py, or
    kit/tasks/<name>/task.py for a task that is a package."""
    module = importlib.import_module(f"kit.tasks.{name}")
    if hasattr(module, "__path__"):
        module = importlib.import_module(f"kit.tasks.{name}.task")
    return module
