"""LightGBM through lgb.train: a Dataset with native categoricals, early stopping on the
validation loss, model.txt."""

from __future__ import annotations

import functools
from pathlib import Path

from kit.models.boosters.base import Booster, categorical_columns


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

    def fit(self, train, y, valid, y_valid, *, weight=None, valid_weight=None) -> None:
        import lightgbm as lgb

        self._size_threads(*train.shape)
        data = lgb.Dataset(train, label=y, weight=weight,
                           categorical_feature=categorical_columns(train) or "auto")
        held = lgb.Dataset(valid, label=y_valid, weight=valid_weight, reference=data)
        self.fit_datasets(data, held)

    def fit_rounds(self, train, y, *, weight=None) -> None:
        import lightgbm as lgb

        self._size_threads(*train.shape)
        data = lgb.Dataset(train, label=y, weight=weight,
                           categorical_feature=categorical_columns(train) or "auto")
        self.model = lgb.train(self._library_params(), data, num_boost_round=self.rounds)
        self._refitted()

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
