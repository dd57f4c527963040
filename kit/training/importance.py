"""Feature importance of tree models: one table per fold, summed up per run.

    fold_importance(["Age", "Sex"], [12.5, 40.1], "total gain")   # a fold's table
    run_importance(fold_tables)                                      # the run's, or None

A fold's table holds feature, importance, type; the run's holds feature, mean, std,
folds, type, sorted by the mean, where a feature a fold never used counts as 0. The type
names what the numbers are, which differs by library: LightGBM total gain, XGBoost gain
(the mean gain of the splits on a feature), CatBoost PredictionValuesChange. The files
(importance.csv per fold and per run) are kit/run_folder/'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def fold_importance(features: Sequence[str], values, kind: str) -> pd.DataFrame:
    return pd.DataFrame({"feature": list(features),
                         "importance": np.asarray(values, dtype=np.float64), "type": kind})


def run_importance(parts: Sequence[pd.DataFrame | None]) -> pd.DataFrame | None:
    """Mean and std over the folds that have a table; None when none has."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    wide = pd.concat([p.set_index("feature")["importance"].rename(i)
                      for i, p in enumerate(parts)], axis=1).fillna(0.0)
    table = pd.DataFrame({"feature": wide.index, "mean": wide.mean(axis=1).to_numpy(),
                          "std": wide.std(axis=1, ddof=0).to_numpy(), "n_folds": len(parts),
                          "type": parts[0]["type"].iloc[0]})
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
