"""A run with several targets (kit/pipeline/targets.py): its column folders, its scores over
the columns and its one submission, from its columns' runs (an ensemble of such runs has
the same layout: one ensemble per column)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import DataError
from kit.io import write_csv
from kit.run_folder.names import SUBMISSION, TARGETS


def target_dirs(run: Path, columns) -> dict[str, Path]:
    """targets/<column>/ of each target column of a run with several targets: the name made
    safe for a path (letters, digits, `.`, `-`, `_`), `-<position>` added where two clash."""
    safe = [re.sub(r"[^\w.-]", "_", str(c)).strip(".") or "target" for c in columns]
    names = [n if safe.count(n) == 1 else f"{n}-{j}" for j, n in enumerate(safe)]
    return {c: Path(run) / TARGETS / n for c, n in zip(columns, names, strict=True)}


def has_targets(run: Path) -> bool:
    """Whether the run folder is a run (or an ensemble) with several targets: it holds targets/."""
    return (Path(run) / TARGETS).is_dir()


def combined_scores(columns: dict[str, dict], **extra) -> dict:
    """scores.json of a run with several targets, from its columns' scores.json: per fold,
    the mean over the columns of their fold scores (the folds every column finished), the
    mean of their OOF scores, and each column's scores under "targets"."""
    first = next(iter(columns.values()))
    n = min(len(s["fold_scores"]) for s in columns.values())
    folds = np.mean([s["fold_scores"][:n] for s in columns.values()], axis=0)
    keys = ("mean", "std", "fold_scores", "oof", "classes", "oof_rows")
    covered = {k: first[k] for k in ("oof_rows", "rows") if k in first}  # one split: alike
    return {"metric": first["metric"], "mode": first["mode"], "problem": first["problem"],
            "mean": float(np.mean(folds)), "std": float(np.std(folds)),
            "fold_scores": [float(f) for f in folds],
            "oof": float(np.mean([s["oof"] for s in columns.values()])), "classes": [],
            "n_folds_trained": n, "split": first.get("split", ""), **covered,
            "targets": {c: {k: s[k] for k in keys if k in s} for c, s in columns.items()},
            **extra}


def merge_submissions(sample: pd.DataFrame, folders: dict[str, Path], dest: Path, *,
                      name: str = SUBMISSION) -> Path:
    """One submission of every target column, in the sample's column and row order, from
    each column's own checked `name` file (each checked against the sample's ids in order)."""
    id_col = sample.columns[0]
    frame = sample[[id_col]].copy()
    for column, folder in folders.items():
        part = pd.read_csv(folder / name, dtype={id_col: sample[id_col].dtype})
        if part[id_col].astype(str).tolist() != sample[id_col].astype(str).tolist():
            raise DataError(f"{folder / name}: its ids differ from the sample's; predict that "
                            "target again")
        frame[column] = part[column].to_numpy()
    return write_csv(dest, frame[list(sample.columns)])
