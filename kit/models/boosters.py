"""LightGBM, XGBoost and CatBoost behind one small interface, each through its own API.

    model = build_model("lgbm", problem="classification", n_outputs=1, seed=0, num_threads=2,
                        learning_rate=0.03)          # any LightGBM parameter, checked by name
    model.fit(train, y, valid, y_valid)              # early stopping on the valid rows' loss
    proba = model.predict(test)                      # (N, C) probabilities or (N,) values
    model.save(fold_dir / model.file_name)           # model.txt / model.ubj / model.cbm

Frames hold float numerics (NaN where missing: each library routes missing values itself)
and pandas `category` columns, whose categories are the fold preprocessor's codes, so
train, validation and test share one coding and an unseen test value gets the code every
rare training value has (kit/data/tabular.py). LightGBM and XGBoost split on the categories
natively; CatBoost gets them as `cat_features` (its ordered target statistics).

Early stopping watches the library's own loss on the fold's validation rows (log loss or
L2: smooth, unlike accuracy, which stops on noise with small folds), and the best
iteration makes the validation and test predictions. Those validation rows also give the
out-of-fold score, so the OOF score is slightly optimistic: the usual Kaggle practice,
accepted here (docs/architecture.md).

Parameter names are checked against the library's own before anything is fitted (only
CatBoost would refuse an unknown one itself; LightGBM logs it, XGBoost warns it is unused).
The rounds, early stopping, seed and threads are the kit's (`rounds`,
`early_stopping_rounds`, `train.seed`, `train.num_threads`): the library's names for them
are refused with a pointer, so one value cannot be set twice. Threads: `num_threads` when
given, else kit.runtime.threads.fit_threads sizes each fit from its training table (a Titanic fold
trains on one thread: a second one costs more than it gives), and `library_threads()` reads
back what the library used, for the fold's done.json.

A fit that runs past `progress_seconds` prints a line every `progress_seconds`: the round,
the validation loss and the best round so far, like the networks' epoch lines.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.io import atomic_path
from kit.models.registry import register
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
            y_valid: np.ndarray) -> None:
        raise NotImplementedError

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


def _categorical(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]


# --- LightGBM --------------------------------------------------------------------------


class LightGBM(Booster):
    library, title, file_name = "lightgbm", "LightGBM", "model.txt"
    importance_type = "total gain"
    defaults = {"learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20,
                "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                "lambda_l2": 1.0}

    @staticmethod
    @functools.cache
    def _aliases() -> dict[str, list[str]]:
        import lightgbm

        return lightgbm.basic._ConfigAliases._get_all_param_aliases()  # from the C library

    @classmethod
    def param_names(cls) -> set[str]:
        return {a for name, names in cls._aliases().items() for a in (name, *names)}

    @classmethod
    def aliases(cls) -> dict[str, str]:
        return {a: name for name, names in cls._aliases().items() for a in names}

    @classmethod
    def owned_names(cls) -> dict[str, tuple[str, ...]]:
        table = cls._aliases()
        return {"rounds": ("num_iterations", *table["num_iterations"]),
                "early_stopping_rounds": ("early_stopping_round", *table["early_stopping_round"]),
                "train.seed": ("seed", *table["seed"]),
                "train.num_threads": ("num_threads", *table["num_threads"])}

    def _library_params(self) -> dict:
        objective = {"regression": ("regression", "l2")}.get(self.problem) or (
            ("binary", "binary_logloss") if self.binary else ("multiclass", "multi_logloss"))
        params = {"objective": objective[0], "metric": objective[1], "verbosity": -1,
                  "seed": self.seed, "num_threads": self.threads, "deterministic": True,
                  **self.params}
        if params["objective"] == "multiclass":
            params["num_class"] = self.n_classes
        self.loss_name = params["metric"]
        return params

    def fit(self, train, y, valid, y_valid) -> None:
        import lightgbm as lgb

        self._size_threads(*train.shape)
        data = lgb.Dataset(train, label=y, categorical_feature=_categorical(train) or "auto")
        held = lgb.Dataset(valid, label=y_valid, reference=data)
        self.fit_datasets(data, held)

    def fit_datasets(self, data, held) -> None:
        """Train on LightGBM Datasets built elsewhere (from lgb.Sequence batches:
        kit/out_of_core/), early stopping on `held`."""
        import lightgbm as lgb

        record: dict = {}
        params = self._library_params()
        progress = self._progress()

        def show(env) -> None:  # LightGBM's callback: (name, metric, value, ...) per set
            progress(env.iteration + 1, env.evaluation_result_list[0][2])

        self.model = lgb.train(
            params, data, num_boost_round=self.rounds, valid_sets=[held],
            valid_names=["valid"],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False),
                       lgb.record_evaluation(record), show])
        self._stopped(next(iter(record["valid"].values())), self.model.best_iteration)

    def _predict(self, frame):
        return self.model.predict(frame, num_iteration=self.best_iteration or None,
                                  num_threads=self.threads)

    def library_threads(self) -> dict[str, int]:
        return {"lightgbm": int(self.model.params["num_threads"])}

    def to_bytes(self) -> bytes:
        return self.model.model_to_string(num_iteration=self.best_iteration or None).encode()

    def load(self, path: Path) -> LightGBM:
        import lightgbm as lgb

        self.model = lgb.Booster(model_file=str(path))
        self.best_iteration = self.model.current_iteration()
        return self

    def importance(self, columns):
        return self.model.feature_importance("gain", iteration=self.best_iteration or None)


# --- XGBoost ---------------------------------------------------------------------------


class XGBoost(Booster):
    library, title, file_name = "xgboost", "XGBoost", "model.ubj"
    importance_type = "gain"
    defaults = {"learning_rate": 0.05, "max_depth": 6, "min_child_weight": 1.0,
                "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                "tree_method": "hist", "max_cat_to_onehot": 4}
    owned = {"rounds": ("num_boost_round", "n_estimators", "num_trees"),
             "early_stopping_rounds": ("early_stopping_rounds",),
             "train.seed": ("seed", "random_state"),
             "train.num_threads": ("nthread", "n_jobs")}
    _ALIASES = {"eta": "learning_rate", "lambda": "reg_lambda", "alpha": "reg_alpha",
                "min_split_loss": "gamma"}

    @staticmethod
    @functools.cache
    def _config_names() -> frozenset[str]:
        """Every parameter of a configured booster (gbtree and dart), read from XGBoost's
        own JSON config, and the learning task's names."""
        import xgboost as xgb

        def keys(node, out):
            for key, value in node.items():
                keys(value, out) if isinstance(value, dict) else out.add(key)
            return out

        data = xgb.DMatrix(np.arange(8, dtype=np.float32).reshape(4, 2), label=[0, 1, 0, 1])
        names: set[str] = set()
        for booster in ("gbtree", "dart", "gblinear"):
            trained = xgb.train({"booster": booster, "nthread": 1}, data, 1)
            keys(json.loads(trained.save_config()), names)
        return frozenset(names | {"verbosity", "eval_metric", "validate_parameters",
                                  "reg_alpha", "reg_lambda", "gamma", "learning_rate"})

    @classmethod
    def param_names(cls) -> set[str]:
        return set(cls._config_names())

    @classmethod
    def aliases(cls) -> dict[str, str]:
        return dict(cls._ALIASES)

    def _library_params(self) -> dict:
        if self.problem == "regression":
            task = {"objective": "reg:squarederror", "eval_metric": "rmse"}
        elif self.binary:
            task = {"objective": "binary:logistic", "eval_metric": "logloss"}
        else:
            task = {"objective": "multi:softprob", "eval_metric": "mlogloss",
                    "num_class": self.n_classes}
        params = {**task, "seed": self.seed, "nthread": self.threads,
                  "device": "cuda" if self.device == "cuda" else "cpu",
                  "validate_parameters": True, "verbosity": 1, **self.params}
        self.loss_name = params["eval_metric"]
        return params

    def fit(self, train, y, valid, y_valid) -> None:
        import xgboost as xgb

        self._size_threads(*train.shape)
        data = xgb.QuantileDMatrix(train, label=y, enable_categorical=True,
                                   nthread=self.threads)
        held = xgb.QuantileDMatrix(valid, label=y_valid, ref=data, enable_categorical=True,
                                   nthread=self.threads)
        self.fit_matrices(data, held)

    def fit_matrices(self, data, held) -> None:
        """Train on XGBoost matrices built elsewhere (from a DataIter over record batches:
        kit/out_of_core/), early stopping on `held`."""
        import xgboost as xgb

        record: dict = {}
        params = self._library_params()
        model = xgb.train(params, data, num_boost_round=self.rounds,
                          evals=[(held, "valid")], evals_result=record,
                          early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False,
                          callbacks=[_xgb_progress(self._progress())])
        self._stopped(record["valid"][self.loss_name], model.best_iteration + 1)
        self.model = model[:self.best_iteration]  # the trees up to the best round

    def fit_dask(self, client, train, y, valid, y_valid) -> int:
        """Train with xgboost.dask on Dask collections (one booster, rows spread over the
        cluster's workers), early stopping on `valid`. Returns how many workers held
        training rows."""
        from xgboost import dask as dxgb

        data = dxgb.DaskQuantileDMatrix(client, train, y, enable_categorical=True)
        held = dxgb.DaskQuantileDMatrix(client, valid, y_valid, ref=data,
                                        enable_categorical=True)
        params = {k: v for k, v in self._library_params().items() if k != "nthread"}
        out = dxgb.train(client, params, data, num_boost_round=self.rounds,
                         evals=[(held, "valid")], early_stopping_rounds=self.early_stopping_rounds,
                         verbose_eval=False)
        model = out["booster"]
        self._stopped(out["history"]["valid"][self.loss_name], model.best_iteration + 1)
        self.model = model[:self.best_iteration]
        self.model.set_param({"nthread": self.threads})
        return len(data.worker_map)

    def _predict(self, frame):
        import xgboost as xgb

        return self.model.predict(xgb.DMatrix(frame, enable_categorical=True,
                                              nthread=self.threads))

    def library_threads(self) -> dict[str, int]:
        config = json.loads(self.model.save_config())  # the C++ learner's own settings
        return {"xgboost": int(config["learner"]["generic_param"]["nthread"])}

    def to_bytes(self) -> bytes:
        return bytes(self.model.save_raw(raw_format="ubj"))

    def load(self, path: Path) -> XGBoost:
        import xgboost as xgb

        self.model = xgb.Booster(params={"nthread": self.num_threads})
        self.model.load_model(bytearray(Path(path).read_bytes()))
        self.best_iteration = self.model.num_boosted_rounds()
        return self

    def importance(self, columns):
        # the booster's own feature names are the frame's columns
        score = self.model.get_score(importance_type="gain")
        return np.array([score.get(c, 0.0) for c in columns], dtype=np.float64)


# --- CatBoost --------------------------------------------------------------------------


class CatBoost(Booster):
    library, title, file_name = "catboost", "CatBoost", "model.cbm"
    importance_type = "PredictionValuesChange"
    defaults = {"learning_rate": 0.05, "depth": 6, "l2_leaf_reg": 3.0}
    owned = {"rounds": ("iterations", "n_estimators", "num_boost_round", "num_trees"),
             "early_stopping_rounds": ("early_stopping_rounds", "od_wait", "od_type"),
             "train.seed": ("random_seed", "random_state"),
             "train.num_threads": ("thread_count",),
             "--device / train.device": ("task_type",),
             "features.categorical": ("cat_features",)}
    _ALIASES = {"eta": "learning_rate", "max_depth": "depth", "reg_lambda": "l2_leaf_reg",
                "objective": "loss_function", "min_child_samples": "min_data_in_leaf",
                "num_leaves": "max_leaves"}

    @classmethod
    def param_names(cls) -> set[str]:
        import catboost

        names: set[str] = set()
        for model in (catboost.CatBoostClassifier, catboost.CatBoostRegressor):
            names |= set(inspect.signature(model.__init__).parameters) - {"self"}
        return names

    @classmethod
    def aliases(cls) -> dict[str, str]:
        return dict(cls._ALIASES)

    def _library_params(self) -> dict:
        loss = "RMSE" if self.problem == "regression" else (
            "Logloss" if self.binary else "MultiClass")
        params = {"loss_function": loss, "iterations": self.rounds,
                  "random_seed": self.seed, "thread_count": self.threads,
                  "task_type": "GPU" if self.device == "cuda" else "CPU",
                  "allow_writing_files": False, "verbose": False, **self.params}
        if self.problem == "classification":  # every class, even one a fold's rows lack
            params.setdefault("class_names", list(range(self.n_classes)))
        self.loss_name = params["loss_function"]
        return params

    @staticmethod
    def _pool(frame: pd.DataFrame, label=None):
        from catboost import Pool

        cats = _categorical(frame)
        # the fold's codes as integers: CatBoost takes whole numbers or strings as categories
        frame = frame.assign(**{c: frame[c].cat.codes.astype(np.int32) for c in cats})
        return Pool(frame, label=label, cat_features=cats or None)

    def fit(self, train, y, valid, y_valid) -> None:
        import catboost

        self._size_threads(*train.shape)
        params = self._library_params()
        self.model = catboost.CatBoost(params)
        # user callbacks run on the CPU only (CatBoost refuses them with task_type GPU)
        callbacks = None if params["task_type"] == "GPU" else [_CatBoostProgress(
            self._progress(), self.loss_name)]
        self.model.fit(self._pool(train, y), eval_set=self._pool(valid, y_valid),
                       early_stopping_rounds=self.early_stopping_rounds, use_best_model=True,
                       callbacks=callbacks)
        history = next(iter(self.model.get_evals_result()["validation"].values()))
        self._stopped(history, self.model.get_best_iteration() + 1)

    def _predict(self, frame):
        kind = "RawFormulaVal" if self.problem == "regression" else "Probability"
        return self.model.predict(self._pool(frame), prediction_type=kind,
                                  thread_count=self.threads)

    def library_threads(self) -> dict[str, int]:
        # CatBoost leaves thread_count out of get_all_params(); get_params() is its record
        return {"catboost": int(self.model.get_params()["thread_count"])}

    def to_bytes(self) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # CatBoost writes to a file name only
            path = Path(tmp) / self.file_name
            self.model.save_model(str(path), format="cbm")
            return path.read_bytes()

    def load(self, path: Path) -> CatBoost:
        import catboost

        self.model = catboost.CatBoost().load_model(str(path), format="cbm")
        self.best_iteration = self.model.tree_count_
        return self

    def importance(self, columns):
        return np.asarray(self.model.get_feature_importance(type="PredictionValuesChange"),
                          dtype=np.float64)


# --- progress callbacks ------------------------------------------------------------------


def _xgb_progress(progress: Progress):
    """An XGBoost TrainingCallback feeding `progress` (the class is made here, so importing
    this module does not import XGBoost)."""
    import xgboost as xgb

    class Callback(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            progress(epoch + 1, float(next(iter(evals_log["valid"].values()))[-1]))
            return False  # False: go on training

    return Callback()


class _CatBoostProgress:
    """CatBoost's callback protocol (`after_iteration(info) -> continue?`)."""

    def __init__(self, progress: Progress, loss_name: str):
        self.progress, self.loss_name = progress, loss_name

    def after_iteration(self, info) -> bool:
        losses = info.metrics["validation"]
        values = losses.get(self.loss_name) or next(iter(losses.values()))
        self.progress(info.iteration, float(values[-1]))
        return True


# --- registered kinds ------------------------------------------------------------------

BOOSTERS: dict[str, type[Booster]] = {}


def _register(kind: str, cls: type[Booster]):
    def builder(problem: str, n_outputs: int, *, rounds: int = 2000,
                early_stopping_rounds: int = 100, seed: int = 0, num_threads: int = 0,
                device: str = "cpu", progress_seconds: float = 10.0, **params) -> Booster:
        return cls(kind, problem, n_outputs, params, rounds=rounds,
                   early_stopping_rounds=early_stopping_rounds, seed=seed,
                   num_threads=num_threads, device=device, progress_seconds=progress_seconds)

    builder.__name__ = builder.__qualname__ = kind
    builder.__doc__ = (f"{cls.title} through its own training API: native categoricals, "
                       f"early stopping, the model saved as {cls.file_name}. Any {cls.title} "
                       f"parameter goes in [model.params.{kind}]; the kit's defaults: "
                       + ", ".join(f"{k} = {v}" for k, v in cls.defaults.items()))
    builder.library_params = cls.param_names  # what check_params / [tune.<kind>] accept
    BOOSTERS[kind] = cls
    return register(kind, kind="booster", task="tabular", libraries=(cls.library,))(builder)


lgbm = _register("lgbm", LightGBM)
xgb = _register("xgb", XGBoost)
catboost = _register("catboost", CatBoost)
