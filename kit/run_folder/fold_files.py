"""A fold's files and the run loop's records: fold<k>/ (done.json, the prediction files,
history.csv, importance.csv), cut_points.json, the submission's copy, refit/seed<i>/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import CheckpointError
from kit.io import atomic_path, write_csv, write_json, write_parquet
from kit.run_folder.names import OOF, SUBMISSION, TEST_PRED
from kit.training.track import HISTORY_FILE, renamed_rows

CUT_POINTS = "cut_points.json"

def write_cut_points(run_dir: Path, record: dict) -> None:
    """cut_points.json: the cuts the run's test labels were cut with (kit.metrics.cut_points.record)."""
    write_json(run_dir / CUT_POINTS, record)

def read_cut_points(run_dir: Path, classes: list) -> np.ndarray | None:
    """The saved cuts for these classes; None for a run without the file (it wrote argmax
    labels, so its submission is reproduced with argmax); a broken file is a CheckpointError."""
    path = Path(run_dir) / CUT_POINTS
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        cuts = np.asarray(saved["cut_points"], dtype=np.float64)
        trained = [str(c) for c in saved["classes"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: no readable 'cut_points' and 'classes' ({exc!r}); "
                              "retrain the run, or restore the file from its training") from None
    if trained != [str(c) for c in classes] or cuts.shape != (len(classes) - 1,) or \
            not np.isfinite(cuts).all() or (np.diff(cuts) < 0).any():
        raise CheckpointError(f"{path}: cut points {cuts.tolist()} for classes {trained} do not "
                              f"fit the run's classes {[str(c) for c in classes]} (C - 1 "
                              "ascending numbers); retrain the run, or restore the file")
    return cuts

DONE = "done.json"

HISTORY = HISTORY_FILE  # per epoch (networks; the trainer writes it live) or boosting round

IMPORTANCE = "importance.csv"

def fold_dir(run_dir: Path, k: int) -> Path:
    """The folder of fold fit `k`: fold<k>/."""
    return Path(run_dir) / f"fold{k}"

def read_done(fold: Path) -> dict | None:
    """A fold's done.json (its info), None while the fold is unfinished."""
    path = Path(fold) / DONE
    return json.loads(path.read_text()) if path.exists() else None

def write_done(fold: Path, info: dict) -> None:
    """done.json, written last: it marks the fold finished."""
    write_json(Path(fold) / DONE, info)

def prediction_files(folders: list[Path], name: str) -> list[Path]:
    """Each folder's oof.parquet (`name` "oof") or test_pred.parquet ("test")."""
    return [Path(f) / {"oof": OOF, "test": TEST_PRED}[name] for f in folders]

def write_history(fold: Path, rows: list[dict]) -> None:
    """history.csv of a fold whose rows came whole (a boosting library's rounds)."""
    write_csv(Path(fold) / HISTORY, pd.DataFrame(rows))

def read_history(fold: Path) -> list[dict] | None:
    """A finished fold's history.csv rows (a resumed run plots a fold it did not train); a
    file an older kit wrote is read in today's column names."""
    path = Path(fold) / HISTORY
    return renamed_rows(pd.read_csv(path).to_dict("records")) if path.exists() else None

def write_fold_importance(fold: Path, table: pd.DataFrame) -> None:
    """importance.csv of a fold: feature, importance, type."""
    write_csv(Path(fold) / IMPORTANCE, table)

def read_fold_importance(fold: Path) -> pd.DataFrame | None:
    path = Path(fold) / IMPORTANCE
    return pd.read_csv(path) if path.is_file() else None

def write_run_importance(run_dir: Path, table: pd.DataFrame) -> Path:
    """The run's importance.csv: feature, mean, std, n_folds, type."""
    return write_csv(Path(run_dir) / IMPORTANCE, table)

def submission_copy(run_dir: Path, submissions_dir: Path, slug: str, label: str) -> Path:
    """submissions/<slug>/<run folder name>[_<label>].csv: a copy of the run's submission
    named so a dry run or demo run says so ("dryrun" / "demo") when the folder does not."""
    marked = not label or run_dir.name.endswith(f"_{label}")
    src = Path(run_dir) / SUBMISSION
    dest = Path(submissions_dir) / slug / (run_dir.name + ("" if marked else f"_{label}") + ".csv")
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest

REFIT = "refit"  # refit/seed<i>/ per refit model, refit/test_pred.parquet: what was submitted

def refit_dir(run_dir: Path, i: int) -> Path:
    """refit/seed<i>/: the refit model trained with model seed train.seed + i."""
    return Path(run_dir) / REFIT / f"seed{i}"

def write_refit_fit(folder: Path, test: pd.DataFrame, info: dict) -> None:
    """A refit model's test predictions, then done.json (written last: it is finished)."""
    write_parquet(Path(folder) / TEST_PRED, test)
    write_done(folder, info)

def read_refit_fit(folder: Path) -> tuple[pd.DataFrame, dict] | None:
    """(test predictions, info) of a finished refit model; None while it is unfinished."""
    info = read_done(folder)
    return None if info is None else (pd.read_parquet(Path(folder) / TEST_PRED), info)
