"""Tabular model kinds: the torch networks (mlp, tabm) and the scikit-learn estimators
(gbdt, linear, rf, extratrees, voting). LightGBM / XGBoost / CatBoost: kit/models/boosters/.

A builder takes the data-derived arguments it names (kit.models.registry.DATA_ARGS) and
`[model.params.<name>]` as keyword-only arguments.
"""

from __future__ import annotations

import torch
from sklearn.pipeline import Pipeline
from torch import nn

from kit.errors import ConfigError
from kit.models.registry import build_model, get_entry, register


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


class TabM(nn.Module):
    """TabM's ensemble backbone (the `tabm` package) on the kit's inputs: numeric columns
    through `num_embeddings` (or as they are); categorical indices one-hot encoded, as the
    package's TabM does, up to `onehot_max` codes, and through embeddings as in the MLP
    above that. The package's own TabM one-hot encodes every column, which makes its first
    layer as wide as the summed cardinalities: on kit/data/synthetic.py's table (Zipf
    categories of up to 5,000 levels) that layer was most of a step, hence the package's
    parts here. Returns (N, k, outputs); kit/objective.py trains on the members' mean loss."""

    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, *,
                 num_embeddings: nn.Module | None, d_numeric: int, emb_dim: int,
                 onehot_max: int, backbone: dict):
        from tabm import EnsembleView, LinearEnsemble, make_tabm_backbone

        super().__init__()
        self.num_embeddings = num_embeddings
        self.onehot = [card <= onehot_max for card in cardinalities]
        self.cardinalities = list(cardinalities)
        self.cat_embeddings = nn.ModuleDict({
            str(i): nn.Embedding(card, min(emb_dim, (card + 1) // 2))
            for i, card in enumerate(cardinalities) if not self.onehot[i]})
        widths = [d_numeric] * n_numeric + [
            card if self.onehot[i] else self.cat_embeddings[str(i)].embedding_dim
            for i, card in enumerate(cardinalities)]
        self.n_numeric = n_numeric
        self.view = EnsembleView(k=backbone["k"])
        self.backbone = make_tabm_backbone(d_in=sum(widths), start_scaling_init_chunks=widths,
                                           **backbone)
        self.output = LinearEnsemble(backbone["d_block"], n_outputs, k=backbone["k"])

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.n_numeric:
            numeric = x_num if self.num_embeddings is None else self.num_embeddings(x_num)
            parts.append(numeric.flatten(1))
        for i, card in enumerate(self.cardinalities):
            if self.onehot[i]:
                parts.append(nn.functional.one_hot(x_cat[:, i], card).to(x_num.dtype))
            else:
                parts.append(self.cat_embeddings[str(i)](x_cat[:, i]))
        return self.output(self.backbone(self.view(torch.cat(parts, dim=1))))


TABM_EMBEDDINGS = ("ple", "periodic", "none")


@register("tabm", task="tabular", libraries=("torch", "tabm", "rtdl_num_embeddings"))
def tabm(n_numeric: int, cardinalities: list[int], n_outputs: int, bins: list, *,
         k: int = 8, n_blocks: int = 2, d_block: int = 256, dropout: float = 0.1,
         embeddings: str = "ple", d_embedding: int = 16, n_bins: int = 48, emb_dim: int = 8,
         onehot_max: int = 16, arch_type: str = "tabm") -> nn.Module:
    """TabM (Gorishniy et al., ICLR 2025): k MLPs sharing one backbone through BatchEnsemble
    layers, trained on the mean of their losses and predicting the mean of their
    probabilities (kit/objective.py). Numeric columns enter through embeddings:
    piecewise-linear on bins fitted on the fold's training rows (`ple`; kit/tasks/tabular/task.py
    fits them with kit/data/bins.py, at most `n_bins` per column), `periodic`, or `none`;
    categorical columns one-hot up to `onehot_max` codes, through embeddings of at most
    `emb_dim` above (their unseen and missing indices included). The package's defaults
    (k = 32, d_block = 512) are sized for a GPU; these for a CPU (docs/models.md, TabM: how they were
    chosen)."""
    import rtdl_num_embeddings as rne

    del n_bins  # kit/tasks/tabular/task.py fits the bins with it; a parameter here so that
    #             [model.params.tabm] and tune.py accept it
    if embeddings not in TABM_EMBEDDINGS:
        raise ConfigError(f"model.params.tabm.embeddings = {embeddings!r}; valid: "
                          f"{', '.join(TABM_EMBEDDINGS)}")
    num_embeddings = None
    if n_numeric and embeddings == "ple":
        edges = [torch.as_tensor(e, dtype=torch.float32) for e in bins]
        num_embeddings = rne.PiecewiseLinearEmbeddings(edges, d_embedding, activation=False,
                                                       version="B")
    elif n_numeric and embeddings == "periodic":
        num_embeddings = rne.PeriodicEmbeddings(n_numeric, d_embedding, lite=False)
    backbone = {"k": k, "n_blocks": n_blocks, "d_block": d_block, "dropout": dropout,
                "arch_type": arch_type,  # the package's TabM.make choice of scaling init:
                "start_scaling_init": "normal" if num_embeddings else "random-signs"}
    return TabM(n_numeric, cardinalities, n_outputs, num_embeddings=num_embeddings,
                d_numeric=d_embedding if num_embeddings else 1, emb_dim=emb_dim,
                onehot_max=onehot_max, backbone=backbone)


@register("gbdt", kind="sklearn", task="tabular")
def gbdt(n_numeric: int, cardinalities: list[int], problem: str, *,
         learning_rate: float = 0.05, max_iter: int = 300, max_depth: int | None = 4,
         max_leaf_nodes: int = 15, min_samples_leaf: int = 10, l2_regularization: float = 1.0,
         early_stopping: bool = False, seed: int = 0):
    """scikit-learn's histogram GBDT; categorical codes are passed as native categoricals,
    up to its 255 levels (max_bins); a column with more stays ordinal codes, which the
    trees still split on."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    categorical = [False] * n_numeric + [size <= 255 for size in cardinalities]
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


class WeightedPipeline(Pipeline):
    """A Pipeline whose fit takes `sample_weight` for its last step: what VotingClassifier /
    VotingRegressor pass every member. scikit-learn's metadata routing does the same, but
    the requests it stores on the estimators make skops recurse when the model is saved."""

    def fit(self, X, y=None, sample_weight=None, **params):
        if sample_weight is not None:
            params[f"{self.steps[-1][0]}__sample_weight"] = sample_weight
        return super().fit(X, y, **params)


@register("voting", kind="sklearn", task="tabular")
def voting(n_numeric: int, cardinalities: list[int], problem: str, member_params: dict, *,
          members: list[str] = ("linear", "gbdt"), weights: list[float] | None = None,
          seed: int = 0):
    """A weighted average of scikit-learn kinds trained together in each fold (scikit-learn's
    VotingRegressor, or VotingClassifier with soft voting), each member built from its own
    [model.params.<member>] table. A regression averages in the fitted target's space: the
    log under data.target_transform = "log1p", which is the space rmsle scores in."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    if len(members) < 2 or len(set(members)) != len(members):
        raise ConfigError(f"model.params.voting.members = {list(members)}: name two or more "
                          "different models, e.g. [\"linear\", \"gbdt\"]")
    if weights is not None and len(weights) != len(members):
        raise ConfigError(f"model.params.voting.weights = {list(weights)} has {len(weights)} "
                          f"values for {len(members)} members; give one per member")
    estimators = []
    for name in members:
        entry = get_entry(name, "tabular")
        if entry.kind != "sklearn" or name == "voting":
            raise ConfigError(f"model.params.voting.members: {name!r} is not a scikit-learn "
                              "kind; vote linear and gbdt, or ensemble runs with ensemble.py")
        params = {"seed": seed, **member_params.get(name, {})}
        member = build_model(name, task="tabular", n_numeric=n_numeric,
                             cardinalities=cardinalities, problem=problem, **params)
        if isinstance(member, Pipeline):  # linear: data.weight reaches its last step
            member = WeightedPipeline(member.steps)
        estimators.append((name, member))
    if problem == "regression":
        return VotingRegressor(estimators, weights=weights)
    return VotingClassifier(estimators, voting="soft", weights=weights)


def _forest(kind: str, problem: str, *, n_estimators, max_features, min_samples_leaf,
            max_samples, max_depth, num_threads, seed):
    from sklearn import ensemble

    from kit.runtime.threads import fit_threads

    name = {"rf": "RandomForest", "extratrees": "ExtraTrees"}[kind]
    cls = getattr(ensemble, name + ("Regressor" if problem == "regression" else "Classifier"))
    if max_features == "default":  # each library's own rule: sqrt for classifiers, all for
        max_features = 1.0 if problem == "regression" else "sqrt"  # regressors
    return cls(n_estimators=n_estimators, max_features=max_features,
               min_samples_leaf=min_samples_leaf, max_depth=max_depth,
               bootstrap=max_samples is not None or kind == "rf", max_samples=max_samples,
               # joblib runs one tree per task: one wait per tree, not one per split as in
               # the OpenMP boosters, so no size rule (not measured: kit/runtime/threads.py MIN_CELLS)
               n_jobs=fit_threads(kind, num_threads=num_threads), random_state=seed)


@register("rf", kind="sklearn", task="tabular")
def rf(problem: str, *, n_estimators: int = 300, max_features: float | str = "default",
       min_samples_leaf: int = 1, max_samples: float | None = None,
       max_depth: int | None = None, num_threads: int = 0, seed: int = 0):
    """scikit-learn's RandomForest on the fold's arrays (median-imputed numerics, category
    codes): a strong baseline with no tuning, and diversity in a blend. `max_samples`
    (a fraction) bounds each tree's bootstrap sample on big tables."""
    return _forest("rf", problem, n_estimators=n_estimators, max_features=max_features,
                   min_samples_leaf=min_samples_leaf, max_samples=max_samples,
                   max_depth=max_depth, num_threads=num_threads, seed=seed)


@register("extratrees", kind="sklearn", task="tabular")
def extratrees(problem: str, *, n_estimators: int = 300, max_features: float | str = "default",
               min_samples_leaf: int = 1, max_samples: float | None = None,
               max_depth: int | None = None, num_threads: int = 0, seed: int = 0):
    """scikit-learn's ExtraTrees (random split points, no bootstrap unless `max_samples`):
    as rf, with more variance reduction and faster fits."""
    return _forest("extratrees", problem, n_estimators=n_estimators,
                   max_features=max_features, min_samples_leaf=min_samples_leaf,
                   max_samples=max_samples, max_depth=max_depth, num_threads=num_threads,
                   seed=seed)


def fit_sklearn(model, x, y, weight=None):
    """Fit a scikit-learn kind, with per-row weights (data.weight) when given: a Pipeline
    (linear) passes them to its last step, voting to every member (WeightedPipeline)."""
    if weight is None:
        return model.fit(x, y)
    if isinstance(model, Pipeline):
        return model.fit(x, y, **{f"{model.steps[-1][0]}__sample_weight": weight})
    return model.fit(x, y, sample_weight=weight)
