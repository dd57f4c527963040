"""Feature importance of tree models: one table per fold, summed up per run.

    write_fold_importance(fold_dir, ["Age", "Sex"], [12.5, 40.1], "total gain")
    write_run_importance(run_dir, fold_dirs)   # importance.csv + importance.png, or None

A fold's `importance.csv` holds feature, importance, type; the run's holds feature, mean,
std, folds, type, sorted by the mean, where a feature a fold never used counts as 0. The
type names what the numbers are, which differs by library: LightGBM total gain, XGBoost
gain (the mean gain of the splits on a feature), CatBoost PredictionValuesChange.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv

FILE = "importance.csv"


def write_fold_importance(fold_dir: Path, features: Sequence[str], values, kind: str) -> Path:
    frame = pd.DataFrame({"feature": list(features),
                          "importance": np.asarray(values, dtype=np.float64), "type": kind})
    return write_csv(Path(fold_dir) / FILE, frame)


def run_importance(fold_dirs: Sequence[Path]) -> pd.DataFrame | None:
    """Mean and std over the folds that wrote a table; None when none did."""
    parts = [pd.read_csv(d / FILE) for d in fold_dirs if (Path(d) / FILE).is_file()]
    if not parts:
        return None
    wide = pd.concat([p.set_index("feature")["importance"].rename(i)
                      for i, p in enumerate(parts)], axis=1).fillna(0.0)
    table = pd.DataFrame({"feature": wide.index, "mean": wide.mean(axis=1).to_numpy(),
                          "std": wide.std(axis=1, ddof=0).to_numpy(), "folds": len(parts),
                          "type": parts[0]["type"].iloc[0]})
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def write_run_importance(run_dir: Path, fold_dirs: Sequence[Path]) -> pd.DataFrame | None:
    """importance.csv and importance.png (the top 30) in the run folder."""
    from kit.training.plots import importance_bars

    table = run_importance(fold_dirs)
    if table is None:
        return None
    write_csv(Path(run_dir) / FILE, table)
    importance_bars(table, Path(run_dir) / "importance.png", kind=table["type"].iloc[0])
    return table
