"""CatBoost through catboost.CatBoost: categorical columns as cat_features (ordered target
statistics), early stopping on the validation loss, model.cbm."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd

from kit.models.boosters.base import Booster, Progress, categorical_columns


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
    def _pool(frame: pd.DataFrame, label=None, weight=None):
        from catboost import Pool

        cats = categorical_columns(frame)
        # the fold's codes as integers: CatBoost takes whole numbers or strings as categories
        frame = frame.assign(**{c: frame[c].cat.codes.astype(np.int32) for c in cats})
        return Pool(frame, label=label, weight=weight, cat_features=cats or None)

    def fit(self, train, y, valid, y_valid, *, weight=None, valid_weight=None) -> None:
        import catboost

        self._size_threads(*train.shape)
        params = self._library_params()
        self.model = catboost.CatBoost(params)
        # user callbacks run on the CPU only (CatBoost refuses them with task_type GPU)
        callbacks = None if params["task_type"] == "GPU" else [_CatBoostProgress(
            self._progress(), self.loss_name)]
        self.model.fit(self._pool(train, y, weight), eval_set=self._pool(valid, y_valid, valid_weight),
                       early_stopping_rounds=self.early_stopping_rounds, use_best_model=True,
                       callbacks=callbacks)
        history = next(iter(self.model.get_evals_result()["validation"].values()))
        self._stopped(history, self.model.get_best_iteration() + 1)

    def fit_rounds(self, train, y, *, weight=None) -> None:
        import catboost

        self._size_threads(*train.shape)
        self.model = catboost.CatBoost(self._library_params())  # iterations = rounds
        self.model.fit(self._pool(train, y, weight))
        self._refitted()

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


class _CatBoostProgress:
    """CatBoost's callback protocol (`after_iteration(info) -> continue?`)."""

    def __init__(self, progress: Progress, loss_name: str):
        self.progress, self.loss_name = progress, loss_name

    def after_iteration(self, info) -> bool:
        losses = info.metrics["validation"]
        values = losses.get(self.loss_name) or next(iter(losses.values()))
        self.progress(info.iteration, float(values[-1]))
        return True
