"""XGBoost through xgb.train on a QuantileDMatrix: native categoricals, early stopping on the
validation loss, model.ubj."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from kit.models.boosters.base import Booster, Progress


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

    def fit(self, train, y, valid, y_valid, *, weight=None, valid_weight=None) -> None:
        import xgboost as xgb

        self._size_threads(*train.shape)
        data = xgb.QuantileDMatrix(train, label=y, weight=weight, enable_categorical=True,
                                   nthread=self.threads)
        held = xgb.QuantileDMatrix(valid, label=y_valid, weight=valid_weight, ref=data,
                                   enable_categorical=True, nthread=self.threads)
        self.fit_matrices(data, held)

    def fit_rounds(self, train, y, *, weight=None) -> None:
        import xgboost as xgb

        self._size_threads(*train.shape)
        data = xgb.QuantileDMatrix(train, label=y, weight=weight, enable_categorical=True,
                                   nthread=self.threads)
        self.model = xgb.train(self._library_params(), data, num_boost_round=self.rounds,
                               verbose_eval=False)
        self._refitted()

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

    def fit_dask(self, client, train, y, valid, y_valid, weight=None, valid_weight=None) -> int:
        """Train with xgboost.dask on Dask collections (one booster, rows spread over the
        cluster's workers), early stopping on `valid`; `weight` / `valid_weight`: the rows'
        data.weight (Dask series partitioned as the rows), or None. Returns how many workers
        held training rows."""
        from xgboost import dask as dxgb

        data = dxgb.DaskQuantileDMatrix(client, train, y, weight=weight, enable_categorical=True)
        held = dxgb.DaskQuantileDMatrix(client, valid, y_valid, weight=valid_weight, ref=data,
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


def _xgb_progress(progress: Progress):
    """An XGBoost TrainingCallback feeding `progress` (the class is made here, so importing
    this module does not import XGBoost)."""
    import xgboost as xgb

    class Callback(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            progress(epoch + 1, float(next(iter(evals_log["valid"].values()))[-1]))
            return False  # False: go on training

    return Callback()
