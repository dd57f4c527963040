"""A run's set-up and records: its own new folder (new_run_dir, a tuning trial's
new_trial_dir), config.toml and run.json (start_run, read / write), scores.json and
ensemble.json read, provenance, library versions and hook hashes checked, the process it
runs in (set_up_process: seed, threads, device)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from kit.config import Config, load_resolved, to_toml
from kit.errors import CheckpointError
from kit.hooks import hook_hashes
from kit.io import write_json, write_text
from kit.paths import ROOT, competition_dir
from kit.run_folder.names import CONFIG, ENSEMBLE_INFO, RUN_INFO, SCORES


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
    (fold<k>/last.pt); in a run with several targets, any column's (targets/<column>/)."""
    return any(any(run_dir.glob(f"{where}fold*/{name}")) for where in ("", "targets/*/")
               for name in ("done.json", "last.pt"))

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
    """scores.json ({} for a folder without one: an unfinished run), in today's key names."""
    return renamed_scores(_read_json(Path(run) / SCORES))

# scores.json keys an older kit wrote, and their names now ("folds" is the assignment only)
OLD_SCORES = {"folds": "fold_scores", "folds_argmax": "fold_scores_argmax"}

def renamed_scores(scores: dict) -> dict:
    """A scores.json as read, its older key names (OLD_SCORES) renamed; each column's
    scores of a run with several targets too."""
    scores = {OLD_SCORES.get(k, k): v for k, v in scores.items()}
    if isinstance(scores.get("targets"), dict):
        scores["targets"] = {c: renamed_scores(s) for c, s in scores["targets"].items()}
    return scores

def read_ensemble_info(run: Path) -> dict:
    """ensemble.json ({} for a trained run)."""
    return _read_json(Path(run) / ENSEMBLE_INFO)

def write_ensemble_info(run: Path, info: dict) -> Path:
    return write_json(Path(run) / ENSEMBLE_INFO, info)

def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
