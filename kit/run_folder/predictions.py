"""A run's predictions and scores: oof.parquet, test_pred.parquet, scores.json and
folds.csv (with the split's hash) written, and a finished run read back (load_run)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import Config
from kit.errors import DataError
from kit.io import write_csv, write_json, write_parquet
from kit.run_folder.fold_files import read_done, write_done
from kit.run_folder.names import OOF, RUN_FILES, RUN_INFO, SCORES, TEST_PRED, pred_columns
from kit.run_folder.records import read_config, read_run_info, renamed_scores, write_run_info
from kit.splits.folds import Split


def oof_frame(ids, folds, targets, pred: np.ndarray, classes: list,
              weight: np.ndarray | None = None) -> pd.DataFrame:
    """oof.parquet's frame: id, fold, target, the row's data.weight in a weighted run (what
    an ensemble weighs the row by), then the prediction columns."""
    frame = pd.DataFrame({"id": ids, "fold": folds, "target": targets})
    if weight is not None:
        frame["weight"] = np.asarray(weight, dtype=np.float64)
    frame[pred_columns(classes)] = pred
    return frame

def pred_frame(ids, pred: np.ndarray, classes: list) -> pd.DataFrame:
    frame = pd.DataFrame({"id": ids})
    frame[pred_columns(classes)] = pred
    return frame

def write_predictions(folder: Path, oof: pd.DataFrame, test: pd.DataFrame) -> None:
    write_parquet(folder / OOF, oof)
    write_parquet(folder / TEST_PRED, test)

def write_fold(fold_dir: Path, oof: pd.DataFrame, test: pd.DataFrame, info: dict) -> None:
    """A fold's predictions, then done.json (written last: it marks the fold finished)."""
    write_predictions(fold_dir, oof, test)
    write_done(fold_dir, info)

def read_fold(fold_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict] | None:
    """(oof, test, info) of a finished fold; None when done.json is missing."""
    info = read_done(fold_dir)
    if info is None:
        return None
    return pd.read_parquet(fold_dir / OOF), pd.read_parquet(fold_dir / TEST_PRED), info

def scores_dict(metric, problem: str, fold_scores: list[float], oof_score: float,
                classes: list, **extra) -> dict:
    return {"metric": metric.name, "mode": metric.mode, "problem": problem,
            "mean": float(np.mean(fold_scores)), "std": float(np.std(fold_scores)),
            "fold_scores": [float(s) for s in fold_scores], "oof": float(oof_score),
            "classes": [str(c) for c in classes], **extra}

def fold_columns(repeats: int) -> list[str]:
    """folds.csv's columns: `fold` (repeat 0), then `fold_r1` ... for a repeated CV."""
    return ["fold"] + [f"fold_r{r}" for r in range(1, repeats)]

def write_folds(run_dir: Path, ids, split: Split, key: str = "",
                name: str = "folds.csv") -> Path:
    """One fold column per repeat, train_from for a time split; `split` names its hash."""
    frame = pd.DataFrame({"id": ids})
    frame[fold_columns(split.folds.shape[1])] = split.folds
    if split.train_from is not None:
        frame["train_from"] = split.train_from
    if key:
        frame["split"] = key
    return write_csv(run_dir / name, frame)

def read_folds(run_dir: Path, ids, name: str = "folds.csv") -> Split | None:
    """The saved split, checked against the training ids; None without one."""
    path = run_dir / name
    if not path.exists():
        return None
    saved = pd.read_csv(path)
    if len(saved) != len(ids) or (saved["id"].astype(str).to_numpy()
                                  != pd.Series(ids).astype(str).to_numpy()).any():
        raise DataError(f"{path} does not match the training data; start a new run")
    columns = [c for c in saved.columns if c == "fold" or c.startswith("fold_r")]
    train_from = saved["train_from"].to_numpy() if "train_from" in saved.columns else None
    return Split(saved[columns].to_numpy(), train_from)

def read_split_key(run_dir: Path, name: str = "folds.csv") -> str:
    """The split hash folds.csv was written with ("" for a run from before splits had one)."""
    path = run_dir / name
    if not path.exists():
        return ""
    saved = pd.read_csv(path, usecols=lambda c: c == "split", nrows=1)
    return str(saved["split"].iloc[0]) if len(saved.columns) and len(saved) else ""

def shared_split(comp_runs: Path, key: str, ids, make) -> Split:
    """The competition's stored split `key` (runs/<slug>/splits/<key>.csv), made with
    `make()` and stored the first time: every run with the same key uses the same folds,
    even after a library update would shuffle differently."""
    folder = comp_runs / "splits"
    split = read_folds(folder, ids, f"{key}.csv")
    if split is None:
        split = make()
        write_folds(folder, ids, split, key, f"{key}.csv")
    return split

@dataclass(frozen=True)
class Run:
    """A finished run: its folder, resolved config, classes and prediction frames by id."""

    path: Path
    cfg: Config
    classes: list[str]  # empty for a regression
    oof: pd.DataFrame  # index: id as str; columns: id, fold, target, prediction columns
    test: pd.DataFrame  # index: id as str; columns: id, prediction columns
    scores: dict  # scores.json

    @property
    def columns(self) -> list[str]:
        return pred_columns(self.classes)

    @property
    def problem(self) -> str:
        return self.cfg.competition.problem

    @property
    def split(self) -> str:
        """The hash of the split the run trained on ("" for runs made before splits had one)."""
        return str(self.scores.get("split", ""))

    @property
    def missing_folds(self) -> int:
        """Fold fits the run did not train (--fits K, --max-time); 0 for an ensemble."""
        planned = self.scores.get("n_splits", 0) * self.scores.get("repeats", 1)
        return max(0, planned - self.scores.get("n_folds_trained", planned))

def load_run(run_dir: str | Path) -> Run:
    """Read a run folder through the prediction-file contract; a broken one is a DataError."""
    path = Path(run_dir)
    missing = [name for name in RUN_FILES if not (path / name).exists()]
    if missing:
        raise DataError(
            f"run folder {path} lacks {', '.join(missing)}: it is not a finished run; "
            f"pass a folder holding {', '.join(RUN_FILES)} (finish or rerun its training)"
        )
    cfg = read_config(path)
    try:
        scores = renamed_scores(json.loads((path / SCORES).read_text()))
        classes = [str(c) for c in scores["classes"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path / 'scores.json'}: no readable 'classes' list ({exc!r})") from None
    oof = read_pred_frame(path / OOF, ["id", "fold", "target"], classes)
    test = read_pred_frame(path / TEST_PRED, ["id"], classes)
    return Run(path, cfg, classes, oof, test, scores)

def read_pred_frame(path: Path, keys: list[str], classes: list[str]) -> pd.DataFrame:
    """A prediction file (oof / test_pred, a fold's or a refit's) checked against the
    contract (the `keys` columns and a prediction column per class, unique ids, no NaN) and
    indexed by id as str, in id order."""
    frame = pd.read_parquet(path)
    wanted = keys + pred_columns(classes)
    lacking = [c for c in wanted if c not in frame.columns]
    if lacking:
        raise DataError(
            f"{path} lacks columns {lacking} (has {list(frame.columns)}); the prediction-file "
            "contract wants id, fold, target (oof only) and p_<class> for each class in "
            "scores.json (pred for a regression)"
        )
    key = frame["id"].astype(str)
    if key.duplicated().any():
        raise DataError(f"{path}: duplicate ids {key[key.duplicated()].head(5).tolist()}")
    if frame[wanted[len(keys):]].isna().to_numpy().any():
        raise DataError(f"{path}: missing predictions (NaN); rerun that run's prediction")
    frame = frame.sort_values("id", kind="mergesort")
    return frame.set_axis(frame["id"].astype(str).to_numpy(), axis=0)


def write_scores(run_dir: Path, scores: dict) -> None:
    write_json(run_dir / SCORES, scores)
    _record_library_threads(run_dir, scores.get("fold_info", []))

def _record_library_threads(run_dir: Path, infos: list[dict]) -> None:
    """run.json's "threads" gains "libraries": per fold, the threads each library really
    used, read back from the fitted model (done.json "threads"), beside the budget the run
    set for torch and BLAS at its start."""
    used = [info["threads"] for info in infos if info.get("threads")]
    if not used or not (run_dir / RUN_INFO).is_file():
        return
    info = read_run_info(run_dir)
    info.setdefault("threads", {})["libraries"] = used
    write_run_info(run_dir, info)
