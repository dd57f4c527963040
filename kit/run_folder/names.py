"""The run folder's file names, its prediction columns, and which folders are runs."""

from __future__ import annotations

import re
from pathlib import Path

CONFIG = "config.toml"

RUN_INFO = "run.json"

SCORES = "scores.json"

OOF = "oof.parquet"

TEST_PRED = "test_pred.parquet"

SUBMISSION = "submission.csv"

ENSEMBLE_INFO = "ensemble.json"

TARGETS = "targets"  # a run with several targets: targets/<column>/, one run per column

RUN_FILES = (OOF, TEST_PRED, SCORES, CONFIG)

PRED = "pred"  # a regression's prediction column

_FOLD_DIR = re.compile(r"fold(\d+)")

def pred_columns(classes: list) -> list[str]:
    """`p_<class>` for each class; a regression (no classes) has one `pred` column."""
    return [f"p_{c}" for c in classes] if len(classes) else [PRED]

def fold_dirs(run: Path) -> list[Path]:
    """fold<k>/ folders holding done.json, in fold order."""
    done = [p for p in run.iterdir() if _FOLD_DIR.fullmatch(p.name) and (p / "done.json").is_file()]
    return sorted(done, key=lambda p: int(_FOLD_DIR.fullmatch(p.name).group(1)))

def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run's (or an ensemble's) folder: it holds config.toml."""
    return (Path(folder) / CONFIG).is_file()

def is_ensemble(run: Path) -> bool:
    """Whether the run folder is an ensemble's (ensemble.json): blended predictions, no
    checkpoints."""
    return (Path(run) / ENSEMBLE_INFO).is_file()
