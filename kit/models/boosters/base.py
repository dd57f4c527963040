"""What the three boosters share: the Booster interface (parameters checked against the
library's own names, predictions shaped, atomic saves, thread sizing) and Progress lines."""

from __future__ import annotations

import difflib
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.io import atomic_path
from kit.runtime.threads import fit_threads, usable_cores


class Progress:
    """Prints `kind round r  valid_<loss> v  best b (v_b)  s` every `every` seconds of a fit,
    the first after `every` seconds, so a fit shorter than that prints nothing (every <= 0:
    never). Each library's callback calls it once a round with the validation loss."""

    def __init__(self, kind: str, loss_name: str, every: float):
        self.kind, self.loss_name, self.every = kind, loss_name, every
        self.started = self.last = time.monotonic()
        self.best, self.best_round = float("inf"), 0

    def __call__(self, round_: int, loss: float) -> None:
        if loss < self.best:  # every loss the kit stops on is minimized (log loss, L2)
            self.best, self.best_round = loss, round_
        now = time.monotonic()
        if self.every <= 0 or now - self.last < self.every:
            return
        self.last = now
        print(f"{self.kind} round {round_:5d}  valid_{self.loss_name} {loss:.5f}  best round "
              f"{self.best_round} ({self.best:.5f})  {now - self.started:.1f}s", flush=True)


class Booster:
    """One model of a boosting library: fit with early stopping, predict, save, load."""

    library: ClassVar[str] = ""  # the package name, as run.json records its version
    title: ClassVar[str] = ""
    file_name: ClassVar[str] = ""
    importance_type: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}  # the kit's starting point, under the library's names
    # what the kit sets itself -> the library's names for it (refused in model.params)
    owned: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, kind: str, problem: str, n_outputs: int, params: dict, *, rounds: int,
                 early_stopping_rounds: int, seed: int, num_threads: int, device: str,
                 progress_seconds: float = 10.0):
        for key, value in (("rounds", rounds), ("early_stopping_rounds", early_stopping_rounds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.params.{kind}.{key} = {value!r}: use a whole number "
                                  f">= 1 (e.g. {key} = {2000 if key == 'rounds' else 100})")
        self.kind, self.problem, self.n_outputs = kind, problem, n_outputs
        self.params = self._merge(kind, params)
        self.rounds, self.early_stopping_rounds = rounds, early_stopping_rounds
        self.seed, self.device, self.progress_seconds = seed, device, progress_seconds
        # num_threads: train.num_threads, 0 = the kit's rule. self.num_threads is the most a
        # fit takes (what kit/out_of_core builds its matrices with), self.threads what this
        # fit takes: fit() sizes it from the table (_size_threads); load() keeps the cap
        self.fixed_threads = num_threads
        self.num_threads = self.threads = num_threads or usable_cores()
        self.model = None
        self.best_iteration = 0  # trees used for every prediction (1-based)
        self.history: list[float] = []  # the validation loss after each round
        self.loss_name = ""

    # --- parameters -------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> set[str]:
        """Every name (aliases included) the library takes."""
        raise NotImplementedError

    @classmethod
    def aliases(cls) -> dict[str, str]:
        """alias -> canonical name, for the names the library gives several of."""
        return {}

    @classmethod
    def owned_names(cls) -> dict[str, tuple[str, ...]]:
        return cls.owned

    @classmethod
    def _merge(cls, kind: str, params: dict) -> dict:
        """The kit's defaults under the user's params (an alias replaces its default)."""
        valid, canon = cls.param_names(), cls.aliases()
        for key in params:
            owner = next((k for k, names in cls.owned_names().items() if key in names), None)
            if owner:
                owner = owner if owner[0] in "-ft" else f"model.params.{kind}.{owner}"
                raise ConfigError(f"model.params.{kind}.{key}: the kit sets {cls.title}'s "
                                  f"{key} from {owner}; set that instead")
            if key not in valid:
                close = difflib.get_close_matches(key, sorted(valid), n=3, cutoff=0.6)
                hint = f"; close matches: {', '.join(close)}" if close else ""
                raise ConfigError(f"model.params.{kind}.{key}: {cls.title} has no parameter "
                                  f"{key!r}{hint}")
        given = {canon.get(k, k) for k in params}
        return {**{k: v for k, v in cls.defaults.items() if canon.get(k, k) not in given},
                **params}

    # --- the library's side -----------------------------------------------------------
    def fit(self, train: pd.DataFrame, y: np.ndarray, valid: pd.DataFrame,
            y_valid: np.ndarray, *, weight: np.ndarray | None = None,
            valid_weight: np.ndarray | None = None) -> None:
        """Train with early stopping on `valid`; `weight` / `valid_weight`: per-row weights
        (data.weight) of the training rows and of the rows early stopping scores."""
        raise NotImplementedError

    def fit_rounds(self, train: pd.DataFrame, y: np.ndarray, *,
                   weight: np.ndarray | None = None) -> None:
        """Train exactly `rounds` rounds on all of `train`: no validation rows, no early
        stopping (a refit on all rows, its length from the folds' best rounds)."""
        raise NotImplementedError

    def _refitted(self) -> None:
        self.history, self.best_iteration = [], self.rounds

    def _predict(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    def load(self, path: Path) -> Booster:
        raise NotImplementedError

    def importance(self, columns: list[str]) -> np.ndarray:
        """One value per column of the training frame (`importance_type`)."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------
    @property
    def binary(self) -> bool:
        return self.problem == "classification" and self.n_outputs == 1

    @property
    def n_classes(self) -> int:
        return 2 if self.binary else self.n_outputs

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, C) class probabilities, or (N,) values in the fitted target's space."""
        out = np.asarray(self._predict(frame), dtype=np.float64)
        if self.problem == "regression":
            return out.reshape(-1)
        if self.binary and out.ndim == 1:
            return np.column_stack([1.0 - out, out])
        return out.reshape(len(frame), self.n_classes)

    def save(self, path: Path) -> Path:
        with atomic_path(path) as tmp:
            tmp.write_bytes(self.to_bytes())
        return Path(path)

    def _size_threads(self, rows: int, columns: int) -> None:
        self.threads = fit_threads(self.kind, rows, columns, num_threads=self.fixed_threads,
                                   cores=self.num_threads)

    def _progress(self) -> Progress:
        return Progress(self.kind, self.loss_name, self.progress_seconds)

    def library_threads(self) -> dict[str, int]:
        """{library: threads}, as the fitted model's library records them."""
        raise NotImplementedError

    def _stopped(self, history: list[float], best: int) -> None:
        self.history = [float(v) for v in history]
        self.best_iteration = int(best) if best else len(self.history)


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
