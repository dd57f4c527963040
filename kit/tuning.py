"""Optuna tuning: each trial is a CV run on the competition's shared folds.

    study = open_study(cfg, "gbdt", storage=None, name="gbdt")      # runs/<slug>/tune/gbdt.journal
    tune(cfg, opts_for_trial, study, model="gbdt", trials=30)

The search space is `[tune.<model>]` in config.toml, entries `name = {low = .., high = ..,
log = true}` (`int = true` for integers) or `name = {choices = [..]}`, over the model's
`model.params.<model>` keys; every kind ships defaults (DEFAULT_SPACES). A trial reports
each fold's score, and Optuna's median pruner stops a bad trial after any fold. Trials write
into the study's folder (runs/<slug>/tune/<study>/trial_<n>/): no submissions, and nothing
the runs table lists.

Storage: a journal file by default (Optuna's JournalFileBackend: safe for several processes
on one machine, where SQLite locks up, and a killed study resumes from it), or any URL
Optuna's RDBStorage takes (PostgreSQL, MySQL) for several machines, where a heartbeat marks a
killed process's trial failed and RetryHeartbeatStaleTrialCallback queues it again. The journal has
no heartbeat in Optuna 5, so a trial left RUNNING by a dead process of this machine (its pid
is recorded) is failed and queued again when a process next opens the study.
"""

from __future__ import annotations

import difflib
import fcntl
import math
import os
import socket
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from kit.config import Config
from kit.errors import ConfigError
from kit.models import get_entry, param_names

DEFAULT_SPACES: dict[str, dict[str, dict]] = {
    "gbdt": {"learning_rate": {"low": 0.01, "high": 0.3, "log": True},
             "max_iter": {"low": 100, "high": 1000, "int": True, "log": True},
             "max_depth": {"low": 2, "high": 8, "int": True},
             "min_samples_leaf": {"low": 5, "high": 100, "int": True, "log": True},
             "l2_regularization": {"low": 1e-3, "high": 10.0, "log": True}},
    "linear": {"alpha": {"low": 0.01, "high": 100.0, "log": True},
               "C": {"low": 0.01, "high": 100.0, "log": True}},
    # the boosters stop early on their own: tune the shape and the regularization, and let
    # `rounds` stay a generous budget
    "lgbm": {"learning_rate": {"low": 0.01, "high": 0.2, "log": True},
             "num_leaves": {"low": 7, "high": 255, "int": True, "log": True},
             "min_data_in_leaf": {"low": 5, "high": 200, "int": True, "log": True},
             "feature_fraction": {"low": 0.4, "high": 1.0},
             "lambda_l2": {"low": 1e-3, "high": 30.0, "log": True}},
    "xgb": {"learning_rate": {"low": 0.01, "high": 0.2, "log": True},
            "max_depth": {"low": 2, "high": 10, "int": True},
            "min_child_weight": {"low": 0.5, "high": 50.0, "log": True},
            "colsample_bytree": {"low": 0.4, "high": 1.0},
            "reg_lambda": {"low": 1e-3, "high": 30.0, "log": True}},
    "catboost": {"learning_rate": {"low": 0.02, "high": 0.2, "log": True},
                 "depth": {"low": 4, "high": 10, "int": True},
                 "l2_leaf_reg": {"low": 0.5, "high": 30.0, "log": True}},
    "rf": {"max_features": {"low": 0.2, "high": 1.0},
           "min_samples_leaf": {"low": 1, "high": 20, "int": True, "log": True}},
    "mlp": {"dropout": {"low": 0.0, "high": 0.5},
            "emb_dim": {"low": 2, "high": 16, "int": True}},
    # TabM's search space in its paper, narrowed to what a CPU trains in minutes (k stays)
    "tabm": {"n_blocks": {"low": 1, "high": 4, "int": True},
             "d_block": {"low": 64, "high": 512, "int": True, "log": True},
             "dropout": {"low": 0.0, "high": 0.5},
             "d_embedding": {"low": 8, "high": 32, "int": True},
             "n_bins": {"low": 8, "high": 64, "int": True, "log": True}},
}
_KEYS = {"low", "high", "log", "int", "choices"}


def search_space(cfg: Config, model: str) -> dict[str, dict]:
    """[tune.<model>] over the kind's defaults, each entry checked against the builder."""
    entry = get_entry(model, cfg.competition.task)
    space = {**DEFAULT_SPACES.get(model, {}), **dict(cfg.tune.get(model, {}))}
    if not space:
        raise ConfigError(f"no search space for model {model!r}: add [tune.{model}] to the "
                          "competition's config.toml, e.g. name = {low = 0.01, high = 0.3}")
    valid = [n for n in param_names(entry.builder) if n not in ("seed", "num_threads",
                                                                 "device")]
    for name, spec in space.items():
        where = f"[tune.{model}] {name}"
        if name not in valid:
            choices = valid if len(valid) <= 20 else difflib.get_close_matches(name, valid)
            raise ConfigError(f"{where}: {model} has no parameter {name!r}; "
                              f"{'valid' if len(valid) <= 20 else 'close matches'}: "
                              f"{', '.join(choices) or 'none'}")
        if not isinstance(spec, dict) or set(spec) - _KEYS or not (
                "choices" in spec or {"low", "high"} <= set(spec)):
            raise ConfigError(f"{where} = {spec!r}: give {{low = .., high = .., log = true}} "
                              "or {choices = [..]}")
        if "low" in spec and not spec["low"] <= spec["high"]:
            raise ConfigError(f"{where}: low = {spec['low']} > high = {spec['high']}; swap them")
        if spec.get("log") and "low" in spec and spec["low"] <= 0:
            raise ConfigError(f"{where}: log = true needs low > 0, got {spec['low']}")
    return space


def suggest(trial, space: dict[str, dict]) -> dict:
    out = {}
    for name, spec in space.items():
        if "choices" in spec:
            out[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif spec.get("int"):
            out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                          log=bool(spec.get("log")))
        else:
            out[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                            log=bool(spec.get("log")))
    return out


def open_study(cfg: Config, comp_runs: Path, name: str, storage: str | None):
    """Create or load study `name`: on a journal file under runs/<slug>/tune/ or at a URL."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    folder = comp_runs / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    if storage:
        try:
            with warnings.catch_warnings():  # Optuna marks the heartbeat experimental
                warnings.simplefilter("ignore")
                backend = RDBStorage(storage, heartbeat_interval=60, grace_period=120,
                                     heartbeat_stale_trial_callback=
                                     RetryHeartbeatStaleTrialCallback(max_retry=3))
        except Exception as exc:  # SQLAlchemy's errors: a bad URL, a server not answering
            raise ConfigError(f"--storage {storage}: cannot open it ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); check the URL and that the "
                              "database server is reachable, or leave --storage out") from None
    else:
        backend = JournalStorage(JournalFileBackend(str(folder / f"{name}.journal")))
    direction = "maximize" if _mode(cfg) == "max" else "minimize"
    study = optuna.create_study(
        study_name=name, storage=backend, direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=cfg.train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    if not storage:
        _retry_dead_trials(study)
    return study, folder / name


def _mode(cfg: Config) -> str:
    from kit.metrics import get_metric

    return get_metric(cfg.competition.metric, cfg.competition.problem).mode


def _retry_dead_trials(study) -> None:
    """Journal storage: fail and re-queue RUNNING trials whose process on this machine died."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or pid is None or _alive(int(pid)):
            continue
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(path: Path):
    """One process at a time counts the finished trials and asks for a new one."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tune(study, folder: Path, space: dict, run_trial: Callable[[dict, object], float], *,
         trials: int, timeout: float | None = None, progress: bool = True) -> dict:
    """Run trials until `trials` have finished in total (COMPLETE or PRUNED, over every
    process sharing the study) or `timeout` seconds pass; returns the best trial. The count
    and the ask share a file lock, so processes of one machine never overshoot; processes
    on several machines (a database storage) may each start one trial past the count."""
    import time

    import optuna
    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    started, done_states = time.monotonic(), (TrialState.COMPLETE, TrialState.PRUNED)
    bar = tqdm(total=trials, desc="trials", disable=not progress)

    def count(states) -> int:
        return len(study.get_trials(deepcopy=False, states=states))

    while timeout is None or time.monotonic() - started < timeout:
        with _locked(folder.with_suffix(".lock")):  # the check and the ask as one step
            if count(done_states) + count((TrialState.RUNNING,)) >= trials:
                break
            trial = study.ask()
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("pid", os.getpid())
        params = suggest(trial, space)
        try:
            value = run_trial(params, trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value if math.isfinite(value) else None,
                       state=TrialState.COMPLETE if math.isfinite(value) else TrialState.FAIL)
        bar.n = count(done_states)
        best = _best(study)
        bar.set_postfix(best=f"{best.value:.5f}" if best else "-", refresh=True)
    bar.close()
    best = _best(study)
    return {"number": best.number, "value": best.value, "params": best.params} if best else {}


def _best(study):
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def params_toml(model: str, params: dict) -> str:
    from kit.config import _toml_value

    lines = [f"[model.params.{model}]"] + [f"{k} = {_toml_value(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def save_plots(study, folder: Path) -> list[str]:
    """Optuna's optimization history and parameter importances as PNGs (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    from kit.io import atomic_path

    written = []
    for name, plot in (("history", vis.plot_optimization_history),
                       ("importance", vis.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna flags these plots experimental
                ax = plot(study)
        except (ValueError, RuntimeError):  # importances need 2+ completed trials
            continue
        path = folder / f"{name}.png"
        with atomic_path(path) as tmp:
            ax.figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
        written.append(str(path))
    return written
