"""Optuna tuning: each trial is a CV run on the competition's shared folds.

    parts = study_parts(cfg, space, data_dir, comp_dir, known)       # kit/tuning/key.py
    study, folder = open_study(cfg, comp_runs, study_name("gbdt", parts), None, parts,
                               seed=study_seed(cfg.train.seed))
    tune(study, folder, space, run_trial, trials=30)

A study is its own: it is keyed on everything its trials' scores depend on (kit/tuning/key.py:
the training files' content, the competition's hooks, the competition, the metric, the
resolved config less what only sets speed or host, and the search space). The default name
carries the key, so other data or another space starts another study; a study named with
--study that was started under another key is refused. Each trial trains in a folder of its
own (kit.run_folder.new_trial_dir: a folder an earlier study of the same name left behind is
never reused), and each process seeds its sampler apart (study_seed). The study's command
line loop (open, trials here or in --jobs processes, best.toml) is kit/tuning/loop.py.

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
import re
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


_PASSWORD = re.compile(r"^(?P<head>[\w+.-]+://[^:/@]*):(?P<password>.*)@")


def mask_url(url: str) -> str:
    """`url` with its password as ***: 'postgresql://u:***@host/db'."""
    found = _PASSWORD.match(url)
    return url if not found else f"{found['head']}:***@{url[found.end():]}"


def _scrub(text: str, url: str) -> str:
    """`text` (a driver's error) without the URL's password, raw or percent-decoded."""
    from urllib.parse import unquote

    found = _PASSWORD.match(url)
    if not found or not found["password"]:
        return text
    for secret in (found["password"], unquote(found["password"])):
        text = text.replace(secret, "***")
    return text


def open_study(cfg: Config, comp_runs: Path, name: str, storage: str | None, parts: dict,
               *, seed: int):
    """Create or load study `name` (on a journal file under runs/<slug>/tune/ or at a URL)
    and claim it for `parts` (kit.tuning.key); a study of another key is refused. `seed`
    seeds this process's sampler (kit.tuning.key.study_seed: apart from other processes)."""
    import optuna

    folder = comp_runs / "tune"
    backend, where = _backend(folder, name, storage)
    with warnings.catch_warnings():  # constant_liar is marked experimental before Optuna 5
        warnings.simplefilter("ignore")
        # constant_liar: a RUNNING trial counts as a bad one, so processes sharing the study
        # do not all sample next to the same promising point
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    kwargs = {"study_name": name, "storage": backend, "sampler": sampler,
              "pruner": optuna.pruners.MedianPruner(n_startup_trials=3)}
    try:  # load first: a refused study is only read
        study = optuna.load_study(**kwargs)
    except KeyError:
        direction = "maximize" if _mode(cfg) == "max" else "minimize"
        study = optuna.create_study(**kwargs, direction=direction, load_if_exists=True)
    _claim(study, parts, where)
    if not storage:
        _retry_dead_trials(study)
    return study, folder / name


def _backend(folder: Path, name: str, storage: str | None):
    """The Optuna storage and how to name it in a message (a URL without its password)."""
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    if not storage:
        folder.mkdir(parents=True, exist_ok=True)
        journal = folder / f"{name}.journal"
        return JournalStorage(JournalFileBackend(str(journal))), str(journal)
    try:
        with warnings.catch_warnings():  # Optuna marks the heartbeat experimental
            warnings.simplefilter("ignore")
            backend = RDBStorage(storage, heartbeat_interval=60, grace_period=120,
                                 heartbeat_stale_trial_callback=
                                 RetryHeartbeatStaleTrialCallback(max_retry=3))
    except Exception as exc:  # SQLAlchemy's errors: a bad URL, a server not answering
        why = _scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}", storage)
        raise ConfigError(f"--storage {mask_url(storage)}: cannot open it ({why}); check the "
                          "URL and that the database server is reachable, or leave --storage "
                          "out") from None
    return backend, f"--storage {mask_url(storage)}"


def _claim(study, parts: dict, where: str) -> None:
    """Mark a new study with `parts`; refuse one started under another key, whose trials
    were scored on other data, another config or another space."""
    # trials before the key: a process beside us sets the key before its first trial, so
    # trials seen here mean its key is seen below
    trials = study.get_trials(deepcopy=False)
    stored = study.user_attrs.get("key")
    if stored == parts["key"]:
        return
    if stored is None and not trials:  # a new study
        study.set_user_attr("parts", parts)
        study.set_user_attr("key", parts["key"])
        return
    old = study.user_attrs.get("parts", {})
    differ = ", ".join(k for k in parts if k != "key" and old.get(k) != parts[k])
    why = (f"with other {differ} (key {stored}, here {parts['key']})" if stored else
           "by a kit that did not key studies on their data, config and search space")
    raise ConfigError(f"study {study.study_name!r} ({where}) was started {why}; its trials "
                      "do not compare with these: give another name with --study NAME, or "
                      "leave --study out (the default name carries the key)")


def _mode(cfg: Config) -> str:
    from kit.metrics.competition import resolve_metric

    return resolve_metric(cfg).mode  # a competition's metric.py says its own direction


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
         trials: int, timeout: float | None = None, progress: str = "bar",
         attrs: dict | None = None) -> dict:
    """Run trials until `trials` have finished in total (COMPLETE or PRUNED, over every
    process sharing the study) or `timeout` seconds pass; returns the best trial. The count
    and the ask share a file lock, so processes of one machine never overshoot; processes
    on several machines (a database storage) may each start one trial past the count.
    `progress`: "bar" (a tqdm bar), "lines" (a line per trial: --jobs children share a
    terminal) or "none"; `attrs` are recorded on each trial beside the host and pid."""
    import time

    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    started, done_states = time.monotonic(), (TrialState.COMPLETE, TrialState.PRUNED)
    bar = tqdm(total=trials, desc="trials", disable=progress != "bar")

    def count(states) -> int:
        return len(study.get_trials(deepcopy=False, states=states))

    while timeout is None or time.monotonic() - started < timeout:
        with _locked(folder.with_suffix(".lock")):  # the check and the ask as one step
            if count(done_states) + count((TrialState.RUNNING,)) >= trials:
                break
            trial = study.ask()
            for key, value in {"host": socket.gethostname(), "pid": os.getpid(),
                               **(attrs or {})}.items():
                trial.set_user_attr(key, value)
        state, value = _run_one(study, trial, space, run_trial)
        bar.n = count(done_states)
        best = _best(study)
        bar.set_postfix(best=f"{best.value:.5f}" if best else "-", refresh=True)
        if progress == "lines":
            print(_trial_line(trial.number, state, value, best, bar.n, trials), flush=True)
    bar.close()
    return best_trial(study)


def _run_one(study, trial, space: dict, run_trial) -> tuple[object, float | None]:
    """Train one trial and tell the study how it ended: (its TrialState, its value)."""
    import optuna
    from optuna.trial import TrialState

    params = suggest(trial, space)
    try:
        value = run_trial(params, trial)
    except optuna.TrialPruned:
        state, value = TrialState.PRUNED, None
    except Exception:  # Ctrl-C leaves it RUNNING: the next process to open the study retries it
        study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        state = TrialState.COMPLETE if math.isfinite(value) else TrialState.FAIL
    value = value if state == TrialState.COMPLETE else None
    study.tell(trial, value, state=state)
    return state, value


def _trial_line(number: int, state, value, best, finished: int, trials: int) -> str:
    shown = f"{value:.5f}" if value is not None else state.name.lower()
    lead = f"best {best.value:.5f} (trial {best.number})" if best else "no best yet"
    return f"trial {number}: {shown}; {lead}; {finished}/{trials} finished"


def best_trial(study) -> dict:
    """The best finished trial's number, value and params ({} before the first)."""
    best = _best(study)
    return {"number": best.number, "value": best.value, "params": best.params} if best else {}


def _best(study):
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def params_toml(model: str, params: dict) -> str:
    from kit.config import toml_value

    lines = [f"[model.params.{model}]"] + [f"{k} = {toml_value(v)}" for k, v in params.items()]
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
