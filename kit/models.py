"""Model registry: a dict plus a decorator. A miss lists the valid names.

Each builder takes the data-derived arguments positionally (sizes and the problem kind the
task knows: any of DATA_ARGS, by name) and the config's `model.params` as keyword-only
arguments; an unknown param is a ConfigError that
lists the builder's valid ones.

    model = build_model("mlp", n_numeric=7, cardinalities=[4, 3], n_outputs=1, hidden=[64])
    model = build_model("gbdt", n_numeric=7, cardinalities=[4, 3], problem="regression")

Image models (built-in CNNs, `timm:<name>`, `torchvision:<name>`), head replacement and
parameter groups live in kit/vision_models.py, offline weights in kit/weights.py; both are
imported at the end of this file so the registry is complete on `import kit.models`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kit.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    kind: str  # "torch": trained by kit.trainer; "sklearn": an estimator with fit/predict_proba
    task: str  # "tabular" or "image"


MODELS: dict[str, ModelEntry] = {}


def register(name: str, *, kind: str = "torch", task: str = "image"):
    """Decorator: `@register("small_cnn")` adds a builder to the registry."""

    def deco(builder):
        MODELS[name] = ModelEntry(name, builder, kind, task)
        return builder

    return deco


def get_entry(name: str, task: str | None = None) -> ModelEntry:
    if name in MODELS and (task is None or MODELS[name].task == task):
        return MODELS[name]
    valid = sorted(n for n, e in MODELS.items()
                   if (task is None or e.task == task) and not n.endswith(":"))
    raise ConfigError(
        f"unknown model {name!r} for a {task or 'any'} task; valid: {', '.join(valid)}"
        + (", timm:<name>, torchvision:<name> (list timm's with "
           "`python -c \"import timm; print(timm.list_models())\"`)" if task != "tabular" else "")
    )


def check_params(builder: Callable, params: dict, where: str = "model.params") -> None:
    """Refuse config params the builder does not take, listing the ones it does."""
    sig = inspect.signature(builder)
    valid = [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"unknown {where} {unknown}; valid: {', '.join(valid) or 'none'}")


# What a task knows about the data; each builder declares the ones it needs.
# `member_params` ({model name: its model.params}) serves builders made of other models.
DATA_ARGS = ("n_numeric", "cardinalities", "n_outputs", "problem", "member_params")


def build_model(name: str, *args: Any, task: str | None = None, **params: Any) -> Any:
    entry = get_entry(name, task)
    wanted = _data_arg_names(entry.builder)
    given = {k: params.pop(k) for k in list(params) if k in DATA_ARGS}
    data_args = {k: v for k, v in given.items() if k in wanted}
    check_params(entry.builder, params)
    return entry.builder(*args, **data_args, **params)


def _data_arg_names(builder: Callable) -> set[str]:
    sig = inspect.signature(builder)
    return {p.name for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD}


# --- tabular -----------------------------------------------------------------------------


def n_outputs(num_classes: int) -> int:
    """Binary tasks use one logit (BCE-with-logits); multi-class tasks one per class."""
    return 1 if num_classes == 2 else num_classes


class TabularMLP(nn.Module):
    """Categorical embeddings + standardized numerics -> MLP -> logits."""

    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int,
                 hidden: tuple[int, ...], dropout: float, emb_dim: int):
        super().__init__()
        # Embedding width grows with cardinality but stays small (fastai-style rule, capped).
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, min(emb_dim, (card + 1) // 2)) for card in cardinalities
        )
        width = n_numeric + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.SiLU(), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = [x_num] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.head(self.body(torch.cat(parts, dim=1)))


@register("mlp", task="tabular")
def mlp(n_numeric: int, cardinalities: list[int], n_outputs: int, *,
        hidden: list[int] = (128, 64), dropout: float = 0.2, emb_dim: int = 8) -> nn.Module:
    return TabularMLP(n_numeric, cardinalities, n_outputs, tuple(hidden), dropout, emb_dim)


@register("gbdt", kind="sklearn", task="tabular")
def gbdt(n_numeric: int, cardinalities: list[int], problem: str, *,
         learning_rate: float = 0.05, max_iter: int = 300, max_depth: int | None = 4,
         max_leaf_nodes: int = 15, min_samples_leaf: int = 10, l2_regularization: float = 1.0,
         early_stopping: bool = False, seed: int = 0):
    """scikit-learn's histogram GBDT; categorical codes are passed as native categoricals."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    categorical = [False] * n_numeric + [True] * len(cardinalities)
    cls = HistGradientBoostingRegressor if problem == "regression" else \
        HistGradientBoostingClassifier
    return cls(
        learning_rate=learning_rate, max_iter=max_iter, max_depth=max_depth,
        max_leaf_nodes=max_leaf_nodes, min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization, early_stopping=early_stopping,
        categorical_features=categorical or None, random_state=seed,
    )


LINEAR_ESTIMATORS = ("ridge", "lasso", "elasticnet")


@register("linear", kind="sklearn", task="tabular")
def linear(n_numeric: int, cardinalities: list[int], problem: str, *,
           estimator: str = "ridge", alpha: float = 10.0, l1_ratio: float = 0.5,
           C: float = 1.0, max_iter: int = 5000, seed: int = 0):
    """One-hot categoricals (codes of the fold's preprocessor: missing and unseen get their
    own columns) beside the standardized numerics, then Ridge / Lasso / ElasticNet (a
    regression, `estimator`, `alpha`) or LogisticRegression (a classification, `C`)."""
    import numpy as np
    from sklearn import linear_model
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if estimator not in LINEAR_ESTIMATORS:
        raise ConfigError(f"model.params.linear.estimator = {estimator!r}; valid: "
                          f"{', '.join(LINEAR_ESTIMATORS)}")
    n_cat = len(cardinalities)
    # the codes are known in advance (0..cardinality-1), so the encoder learns nothing
    onehot = OneHotEncoder(categories=[np.arange(c, dtype=np.float64) for c in cardinalities],
                           handle_unknown="ignore", sparse_output=True)
    columns = ColumnTransformer([("cat", onehot, list(range(n_numeric, n_numeric + n_cat)))],
                                remainder="passthrough", sparse_threshold=0.3)
    if problem == "regression":
        model = {"ridge": lambda: linear_model.Ridge(alpha=alpha),
                 "lasso": lambda: linear_model.Lasso(alpha=alpha, max_iter=max_iter,
                                                     random_state=seed),
                 "elasticnet": lambda: linear_model.ElasticNet(
                     alpha=alpha, l1_ratio=l1_ratio, max_iter=max_iter, random_state=seed),
                 }[estimator]()
    else:
        model = linear_model.LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    return Pipeline([("columns", columns), ("model", model)])


@register("blend", kind="sklearn", task="tabular")
def blend(n_numeric: int, cardinalities: list[int], problem: str, member_params: dict, *,
          members: list[str] = ("linear", "gbdt"), weights: list[float] | None = None,
          seed: int = 0):
    """A weighted average of scikit-learn kinds trained together in each fold (scikit-learn's
    VotingRegressor, or VotingClassifier with soft voting), each member built from its own
    [model.params.<member>] table. A regression averages in the fitted target's space: the
    log under data.target_transform = "log1p", which is the space rmsle scores in."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    if len(members) < 2 or len(set(members)) != len(members):
        raise ConfigError(f"model.params.blend.members = {list(members)}: name two or more "
                          "different models, e.g. [\"linear\", \"gbdt\"]")
    if weights is not None and len(weights) != len(members):
        raise ConfigError(f"model.params.blend.weights = {list(weights)} has {len(weights)} "
                          f"values for {len(members)} members; give one per member")
    estimators = []
    for name in members:
        entry = get_entry(name, "tabular")
        if entry.kind != "sklearn" or name == "blend":
            raise ConfigError(f"model.params.blend.members: {name!r} is not a scikit-learn "
                              "kind; blend linear and gbdt, or ensemble runs with ensemble.py")
        params = {"seed": seed, **member_params.get(name, {})}
        estimators.append((name, build_model(name, task="tabular", n_numeric=n_numeric,
                                             cardinalities=cardinalities, problem=problem,
                                             **params)))
    if problem == "regression":
        return VotingRegressor(estimators, weights=weights)
    return VotingClassifier(estimators, voting="soft", weights=weights)


# Image models register themselves into MODELS when kit.vision_models is imported. Its
# public names are re-exported lazily (PEP 562) so either module can be imported first.
import kit.vision_models  # noqa: E402,F401

_VISION = ("build_image_model", "find_head", "param_groups", "replace_head",
           "set_backbone_trainable", "image_model_names")


def __getattr__(name: str):
    if name in _VISION:
        return getattr(kit.vision_models, name)
    raise AttributeError(f"module 'kit.models' has no attribute {name!r}")
