"""A run's files: one module reads and writes them (docs/architecture.md, "Run folder").

Training (kit/pipeline/), prediction (kit/predict.py) and the ensemble (kit/ensembles/build.py)
all go through here, so the prediction-file contract lives in one place:

- `oof.parquet`: id, fold, target, then the prediction columns;
- `test_pred.parquet`: id, then the same prediction columns (the mean over folds);
- prediction columns: `p_<class>` per class (a classification) or `pred` (a regression,
  original scale);
- `scores.json`: metric, mode, problem, per-fold scores, mean, std, OOF score, classes;
- `folds.csv`: id, fold (fold_r1 ... for repeats; -1: never validated), train_from (time
  splits: the first fit that trains on the row, kit/splits/folds.py `Split`), split (its hash);
- `run.json`: git commit, command line, seed, start time (its "resumes" appended);
- `config.toml`: the resolved config;
- `cut_points.json`: under qwk (mcc / f1_macro on two classes), the cuts on the expected
  class index that made the submission's labels (kit/metrics/cut_points.py);
- `submission.csv`: the run's checked submission;
- `ensemble.json`: only in an ensemble's folder (members, weights, scores).

Fold folders hold the same two prediction files for their rows, plus `done.json`.
A run's set-up is here too: its own new folder (`new_run_dir`, a tuning trial's
`new_trial_dir`), its first records (`start_run`) and the process it runs in
(`set_up_process`: seed, threads, device).
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import Config, load_resolved, to_toml
from kit.errors import CheckpointError, DataError
from kit.hooks import hook_hashes
from kit.io import atomic_path, write_csv, write_json, write_parquet, write_text
from kit.paths import ROOT, competition_dir
from kit.splits.folds import Split
from kit.training.track import HISTORY_FILE

CONFIG = "config.toml"
RUN_INFO = "run.json"
SCORES = "scores.json"
OOF = "oof.parquet"
TEST_PRED = "test_pred.parquet"
SUBMISSION = "submission.csv"
ENSEMBLE_INFO = "ensemble.json"
RUN_FILES = (OOF, TEST_PRED, SCORES, CONFIG)
PRED = "pred"  # a regression's prediction column
_FOLD_DIR = re.compile(r"fold(\d+)")


# --- names ---------------------------------------------------------------------------------


def pred_columns(classes: list) -> list[str]:
    """`p_<class>` for each class; a regression (no classes) has one `pred` column."""
    return [f"p_{c}" for c in classes] if len(classes) else [PRED]


def new_run_dir(parent: Path, *parts: str) -> Path:
    """Make and return <parent>/<YYYYmmdd-HHMMSS>_<part>_<part>..., the time suffixed -2,
    -3 ... when the name is taken. The folder is created here (mkdir without exist_ok), so
    two runs started in the same second never share one.

    >>> new_run_dir(Path("runs/titanic"), "mlp", "eng")  # doctest: +SKIP
    PosixPath('runs/titanic/20260101-120000_mlp_eng')
    """
    clean = [re.sub(r"[:/\\]", "-", p) for p in parts if p]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # the count goes on the time, so a name still ends with its label (_demo)
    return _new_dir(parent, lambda n: "_".join([stamp if n == 1 else f"{stamp}-{n}", *clean]))


def new_trial_dir(folder: Path, number: int) -> Path:
    """A new, empty folder for tuning trial `number`: trial_0007, or trial_0007_1, .. where
    an earlier study of this name (its journal removed) left one; a trial reports only folds
    it trained itself."""
    return _new_dir(folder, lambda n: f"trial_{number:04d}" + (f"_{n - 1}" if n > 1 else ""))


def _new_dir(parent: Path, name: Callable[[int], str]) -> Path:
    """parent / name(1), else name(2), ...: the first that mkdir (atomic: two processes
    never get the same folder) creates."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = parent / name(n)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def git_commit() -> str:
    """HEAD of the kit's checkout, or "unknown" (a Kaggle kernel has no git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def provenance(argv: list[str] | None = None) -> dict:
    return {"git_commit": git_commit(), "argv": list(sys.argv if argv is None else argv),
            "started": time.strftime("%F %T")}


def check_library_versions(run: Path) -> list[str]:
    """Warn when a library that saved the run's models (run.json "libraries") is installed
    at another version here: a Kaggle image may be older than the machine that trained.
    Returns the warnings."""
    from importlib.metadata import PackageNotFoundError, version

    path = Path(run) / RUN_INFO
    saved = read_run_info(run).get("libraries", {})
    out = []
    for package, trained in saved.items():
        try:
            here = version(package)
        except PackageNotFoundError:
            here = "not installed"
        if here != trained:
            out.append(f"{package} {here} is installed here, the run's models were saved "
                       f"with {package} {trained} ({path}); if loading or predictions fail, "
                       f"install {package}=={trained}")
    for message in out:
        warnings.warn(message, stacklevel=2)
    return out


def check_hooks(run: Path, saved: dict | None, slug: str) -> None:
    """Refuse when the competition's hooks (features.py, layout.py, ...) differ from those
    the run trained with (run.json "hooks"): the same run would predict something else.
    A run from before hooks were recorded (no "hooks") is read as it is, with a warning."""
    folder = competition_dir(slug)
    if saved is None:
        warnings.warn(f"{run / 'run.json'} does not record its hooks' hashes (a run from "
                      f"before they were kept): {folder}'s hooks are used as they are now",
                      stacklevel=2)
        return
    now = hook_hashes(folder)
    changed = sorted(n for n in {*saved, *now} if saved.get(n) != now.get(n))
    if changed:
        raise CheckpointError(
            f"{run}: {', '.join(str(folder / n) for n in changed)} changed since the run "
            "trained (run.json \"hooks\" holds their sha256); restore the run's version "
            "(git log -- that file) or train a new run with the file as it is now")


def fold_dirs(run: Path) -> list[Path]:
    """fold<k>/ folders holding done.json, in fold order."""
    done = [p for p in run.iterdir() if _FOLD_DIR.fullmatch(p.name) and (p / "done.json").is_file()]
    return sorted(done, key=lambda p: int(_FOLD_DIR.fullmatch(p.name).group(1)))


# --- a run's set-up and records -------------------------------------------------------------


def start_run(parent: Path, cfg: Config, parts: tuple[str, ...], info: dict) -> Path:
    """A new run folder of its own (new_run_dir(parent, *parts)) holding the resolved
    config.toml and run.json (`info`: provenance, seeds, where and how it runs)."""
    run_dir = new_run_dir(parent, *parts)
    write_config(run_dir, cfg)
    write_run_info(run_dir, info)
    return run_dir


def set_up_process(cfg: Config, device: str | None = None) -> tuple[object, dict]:
    """Seed (train.seed), apply the thread budget (train.num_threads; 1/KIT_JOBS of the
    cores in a tuning job) and pick the device (`device`, else train.device) for a run
    trained or predicted in this process; call it after the heavy imports (the thread rule
    in kit.runtime.threads). Returns (the torch.device, the threads run.json records)."""
    from kit.runtime.devices import pick_device
    from kit.runtime.seed import seed_everything
    from kit.runtime.threads import apply_thread_budget

    seed_everything(cfg.train.seed)
    threads = apply_thread_budget(cfg.train.num_threads)
    return pick_device(device or cfg.train.device), threads


def finished_runs(comp_runs: Path) -> list[Path]:
    """The folders under runs/<slug>/ holding scores.json (finished runs and ensembles), by
    name (their start time)."""
    return sorted(p for p in Path(comp_runs).glob("*") if (p / SCORES).is_file())


def has_progress(run_dir: Path) -> bool:
    """Whether a fold finished (fold<k>/done.json) or left a checkpoint to resume from
    (fold<k>/last.pt)."""
    return any(run_dir.glob("fold*/done.json")) or any(run_dir.glob("fold*/last.pt"))


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run's (or an ensemble's) folder: it holds config.toml."""
    return (Path(folder) / CONFIG).is_file()


def is_ensemble(run: Path) -> bool:
    """Whether the run folder is an ensemble's (ensemble.json): blended predictions, no
    checkpoints."""
    return (Path(run) / ENSEMBLE_INFO).is_file()


def read_config(run: Path) -> Config:
    """The run's resolved config.toml (checks competition.slug is a name)."""
    return load_resolved(Path(run) / CONFIG)


def write_config(run: Path, cfg: Config) -> Path:
    return write_text(Path(run) / CONFIG, to_toml(cfg))


def read_run_info(run: Path) -> dict:
    """run.json ({} for a folder without one)."""
    return _read_json(Path(run) / RUN_INFO)


def write_run_info(run: Path, info: dict) -> None:
    write_json(Path(run) / RUN_INFO, info)


def read_scores(run: Path) -> dict:
    """scores.json ({} for a folder without one: an unfinished run)."""
    return _read_json(Path(run) / SCORES)


def read_ensemble_info(run: Path) -> dict:
    """ensemble.json ({} for a trained run)."""
    return _read_json(Path(run) / ENSEMBLE_INFO)


def write_ensemble_info(run: Path, info: dict) -> Path:
    return write_json(Path(run) / ENSEMBLE_INFO, info)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


# --- writing -------------------------------------------------------------------------------


def oof_frame(ids, folds, targets, pred: np.ndarray, classes: list) -> pd.DataFrame:
    frame = pd.DataFrame({"id": ids, "fold": folds, "target": targets})
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
            "folds": [float(s) for s in fold_scores], "oof": float(oof_score),
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


# --- reading a finished run ----------------------------------------------------------------


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
        """Fold fits the run did not train (--folds K, --max-time); 0 for an ensemble."""
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
        scores = json.loads((path / SCORES).read_text())
        classes = [str(c) for c in scores["classes"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path / 'scores.json'}: no readable 'classes' list ({exc!r})") from None
    oof = _read_frame(path / OOF, ["id", "fold", "target"], classes)
    test = _read_frame(path / TEST_PRED, ["id"], classes)
    return Run(path, cfg, classes, oof, test, scores)


def _read_frame(path: Path, keys: list[str], classes: list[str]) -> pd.DataFrame:
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


# --- cut points (kit/metrics/cut_points.py) --------------------------------------------------------

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


# --- a fold's files and the run loop's records ----------------------------------------------

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
    """A finished fold's history.csv rows (a resumed run plots a fold it did not train)."""
    path = Path(fold) / HISTORY
    return pd.read_csv(path).to_dict("records") if path.exists() else None


def write_fold_importance(fold: Path, table: pd.DataFrame) -> None:
    """importance.csv of a fold: feature, importance, type."""
    write_csv(Path(fold) / IMPORTANCE, table)


def read_fold_importance(fold: Path) -> pd.DataFrame | None:
    path = Path(fold) / IMPORTANCE
    return pd.read_csv(path) if path.is_file() else None


def write_run_importance(run_dir: Path, table: pd.DataFrame) -> Path:
    """The run's importance.csv: feature, mean, std, folds, type."""
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


# --- a refit on all rows (kit/pipeline/refit.py) --------------------------------------------

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
