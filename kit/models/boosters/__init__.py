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

The package: base.py (the shared interface, Progress), lgbm.py, xgb.py, catboost.py (one
library each); this module registers the three kinds.
"""

from __future__ import annotations

from kit.models.boosters.base import Booster
from kit.models.boosters.catboost import CatBoost
from kit.models.boosters.lgbm import LightGBM
from kit.models.boosters.xgb import XGBoost
from kit.models.registry import register

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
