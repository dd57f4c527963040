"""The tabular task: CSV -> features hook -> parquet cache -> per-fold preprocessing -> model.

Classification or regression (`competition.problem`): a regression's target is transformed
per fold (`data.target_transform`, plus standardization for networks; kit/objective.py)
and every prediction is inverted to the original scale before it leaves the fold. An
optional `keep_train_rows(frame) -> bool mask` in features.py drops rows (outliers) from
each fold's training rows only, never from validation or test rows, and an optional
`extra_train_rows(fit) -> DataFrame` adds labelled rows (an "original" dataset) to them.

Torch models (`mlp`) read their rows through TabularStream (record batches, one vectorized
transform per chunk, pre-batched tensors) so the same code scales from Titanic to tens of
millions of rows; with `train.device_data` a small table is transformed once and its
batches sliced from tensors on the device instead (TensorBatches). scikit-learn models
(`gbdt`) get the transformed arrays directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from kit.config import Config
from kit.data.batches import TensorBatches
from kit.data.columns import check_target_column, feature_lists
from kit.data.sources import read_table
from kit.data.stream import TabularStream, stream_loader
from kit.data.tabular import (
    CategoricalPreprocessor,
    NumericPreprocessor,
    load_bins,
    load_preprocessors,
    save_preprocessors,
)
from kit.data.text import SKOPS_TRUSTED as TEXT_TRUSTED
from kit.data.text import (
    TextJoined,
    check_text_columns,
    fit_fold_text,
    load_fold_text,
    with_tfidf,
)
from kit.data.weights import read_weights
from kit.errors import CheckpointError, ConfigError, DataError
from kit.hooks import call_with_params, load_hook, map_batches
from kit.io import atomic_path
from kit.metrics.competition import resolve_metric
from kit.models import get_entry
from kit.models.tabular import fit_sklearn
from kit.objective import Objective, TargetTransform, check_target
from kit.run_folder import read_done, read_folds
from kit.runtime.threads import fit_threads
from kit.splits.folds import fold_rows
from kit.splits.time import read_times
from kit.tasks import FoldContext, FoldOutput, Prepared
from kit.tasks.joint import column_pred, joint_for, joint_labels, network_folder, shared_fit
from kit.tasks.tabular.fold_features import fold_functions
from kit.tasks.tabular.models import (
    TabularTransform,
    booster_frame,
    booster_predict,
    build_fold_model,
    fit_bins,
    load_best,
    save_booster,
    sized,
)
from kit.tasks.tabular.tables import (
    ROW,
    Tables,
    all_rows_setup,
    check_classes,
    fold_setup,
    make_tables,
)
from kit.training.checkpoints import best_checkpoint
from kit.training.trainer import Trainer


def _read(cfg: Config, data_dir: Path, cache_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = cfg.data
    options = {"dtypes": d.dtypes, "cache_mb": d.csv_cache_mb, "cache_dir": cache_dir}
    train = read_table(data_dir, d.train, what="train", required=[d.id, d.target], **options)
    test = read_table(data_dir, d.test, what="test", required=[d.id], **options)
    check_target_column(cfg, train.columns, test, data_dir / d.test)  # before a hook blurs it
    dup = test[d.id][test[d.id].duplicated()]
    if len(dup):
        raise DataError(f"{data_dir / d.test}: duplicate ids in {d.id!r}: {dup.head(5).tolist()}")
    if train[d.target].isna().any():
        rows = np.flatnonzero(train[d.target].isna())[:5].tolist()
        raise DataError(f"{data_dir / d.train}: target {d.target!r} is missing in rows {rows}")
    return train, test


def prepare(cfg: Config, comp_dir: Path, data_dir: Path, cache_dir: Path) -> Prepared:
    d, f = cfg.data, cfg.features
    train, test = _read(cfg, data_dir, cache_dir)
    hook = load_hook(comp_dir, "features", "build")
    if hook is not None:
        target_dtype = train[d.target].dtype
        train, test = call_with_params(hook, f.params, "features.params", train, test)
        if d.target not in train.columns:
            raise DataError(f"{comp_dir / 'features.py'}: build() dropped the target column "
                            f"{d.target!r} from train; keep it")
        if train[d.target].notna().all():  # a concat with test turns int labels into floats
            train[d.target] = train[d.target].astype(target_dtype)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    batch_hook = load_hook(comp_dir, "features", "transform_batch")
    if batch_hook is not None:  # row-local and label-free: streamed tables can run it too
        where = str(comp_dir / "features.py")
        train = map_batches(batch_hook, train, hide=(d.target,), where=where)
        test = map_batches(batch_hook, test, where=where)
    source = str(data_dir / d.train)
    times = read_times(train, cfg.cv, source)  # None unless cv.strategy = "time"
    weight = read_weights(train, d.weight, source)  # None unless data.weight is set: every kind
    check_target(cfg.competition.problem, train[d.target], d.target, source)
    if cfg.competition.problem == "regression":
        y, classes = _regression_target(cfg, train[d.target], source), []
    else:
        classes = sorted(train[d.target].unique().tolist())
        if len(classes) < 2:
            raise DataError(f"{source}: target {d.target!r} has one value {classes}; "
                            "nothing to learn")
        check_classes(cfg, classes, data_dir)
        y = pd.Index(classes).get_indexer(train[d.target]).astype(np.int64)
    strata = _strata(cfg, train, source)  # None unless cv.stratify_on is set
    lists = feature_lists(cfg, train, test.columns)
    numeric, categorical, text = lists["numeric"], lists["categorical"], lists["text"]
    columns = [*numeric, *categorical, *text]  # text stays raw in the tables: fitted per fold
    for name, frame in (("train", train), ("test", test)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{name} data has no feature column(s) {missing} after features.py; "
                            "fix features.numeric / features.categorical / features.text in "
                            "config.toml")
    check_text_columns(text, train, source)
    _check_target_encode(cfg, train, test)
    keep = [d.id, *columns]
    tables = make_tables(train[keep].assign(**{ROW: np.arange(len(train)), "_y": y}),
                         test[keep].assign(**{ROW: np.arange(len(test))}), cache_dir,
                         numeric, categorical, y, weight)
    groups = train[cfg.cv.group].to_numpy() if cfg.cv.group else None
    hook = load_hook(comp_dir, "features", "fold_features") if f.fold_hook else None
    fold_fns = fold_functions(cfg, hook)
    if not columns and not fold_fns:  # fold-safe columns (target_encode, fold_features) count
        raise ConfigError(f"{source}: no feature columns: features.numeric, .categorical and "
                          ".text are all empty (the [features] defaults); set numeric = "
                          "\"auto\" and categorical = \"auto\" in config.toml to take the "
                          "columns train and test share, or list them")
    return Prepared(ids=train[d.id].to_numpy(), y=y, classes=classes, groups=groups,
                    test_ids=test[d.id].to_numpy(),
                    features=lists, times=times, weight=weight, strata=strata,
                    state={"tables": tables, "frame": train, "test_frame": test,
                           "fold_fns": fold_fns,
                           "keep_rows": load_hook(comp_dir, "features", "keep_train_rows"),
                           "extra_rows": load_hook(comp_dir, "features", "extra_train_rows")})


def _strata(cfg: Config, train: pd.DataFrame, source: str) -> np.ndarray | None:
    """cv.stratify_on's columns per train row: (N, m) class codes (or values under a
    regression), (N,) for one column; None when unset (the split follows data.target)."""
    columns = list(cfg.cv.stratify_on)
    if not columns:
        return None
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise DataError(f"{source}: cv.stratify_on lists {missing}, which train has not after "
                        f"features.py; train's columns: {list(train.columns)[:12]}")
    frame = train[columns]
    for column in columns:
        check_target(cfg.competition.problem, frame[column], column, source)
        if frame[column].isna().any():
            rows = np.flatnonzero(frame[column].isna())[:5].tolist()
            raise DataError(f"{source}: target {column!r} is missing in rows {rows}")
    if cfg.competition.problem == "regression":
        values = frame.to_numpy(np.float64)
    else:
        values = np.column_stack([pd.factorize(frame[c], sort=True)[0] for c in columns])
    return values[:, 0] if len(columns) == 1 else values


def _check_target_encode(cfg: Config, train: pd.DataFrame, test: pd.DataFrame) -> None:
    for name, frame in (("train", train), ("test", test)):
        missing = [c for c in cfg.features.target_encode if c not in frame.columns]
        if missing:
            raise DataError(f"features.target_encode lists {missing}, which the {name} data does "
                            "not have after features.py; target-encode columns both files hold")


def _regression_target(cfg: Config, target: pd.Series, source: str) -> np.ndarray:
    y = target.to_numpy(np.float64)  # numeric and finite: check_target saw to it
    if cfg.competition.metric == "rmsle" and (y < 0).any():
        rows = np.flatnonzero(y < 0)[:5].tolist()
        raise DataError(f"{source}: target {cfg.data.target!r} is negative in rows {rows}, and "
                        "rmsle is undefined there; use competition.metric = \"rmse\"")
    TargetTransform(cfg.data.target_transform).fit(y)  # log1p refuses y <= -1 here, not in a fold
    return y


def _fit_preprocessors(tables: Tables, cfg: Config, rows: np.ndarray):
    train = tables.train.iloc[rows]
    num = NumericPreprocessor(cfg.features.log1p_skewed, cfg.features.scaling).fit(
        train, tables.numeric)
    cat = CategoricalPreprocessor(min_count=2).fit(train, tables.categorical)
    return num, cat


def network_batches(tables: Tables, cfg: Config, transform, part: str, rows=None, *,
                    shuffle=False, seed=0, device="cpu"):
    """The rows' batches: streamed from the parquet cache, or with `train.device_data`
    transformed once and sliced from tensors on the device (small tables like Titanic)."""
    if not cfg.train.device_data:
        return _stream(tables, cfg, transform, part, rows, shuffle=shuffle, seed=seed)
    frame = getattr(tables, part) if rows is None else getattr(tables, part).iloc[rows]
    return TensorBatches(transform(frame), cfg.train.batch_size, shuffle=shuffle, seed=seed,
                         device=device, drop_last=shuffle)


def _stream(tables: Tables, cfg: Config, transform, part: str, rows=None, *, shuffle=False,
            seed=0):
    columns = [ROW, *tables.numeric, *tables.categorical]
    if part == "train":
        columns += ["_y", *(["_w"] if tables.w is not None else [])]
    flt = pc.field(ROW).isin(np.sort(rows)) if rows is not None else None
    stream = TabularStream(tables.parquet(part), columns=columns,
                           transform=transform, batch_size=cfg.train.batch_size,
                           shuffle=shuffle, seed=seed, filter=flt,
                           drop_last=shuffle and len(rows) > cfg.train.batch_size)
    return stream_loader(stream, num_workers=cfg.train.num_workers if shuffle else 0)


@dataclass
class FoldFit:
    """One fold fit's pieces: what the run handed it, the config sized for its rows, its
    tables and training rows, the fitted preprocessors, objective and text features."""

    ctx: FoldContext
    cfg: Config
    tables: Tables
    rows: np.ndarray
    num: NumericPreprocessor
    cat: CategoricalPreprocessor
    objective: Objective
    text: object = None  # kit.data.text.TextFeatures, or None
    # what a network learns and is scored on by row position: tables.y, or under
    # model.joint_targets every target's (N, T) (kit/tasks/joint.py)
    labels: np.ndarray | None = None

    def transform(self) -> TabularTransform:
        """The network's batches: features, and `y` in the model's space."""
        joint = self.labels if self.cfg.model.joint_targets else None
        return TabularTransform(self.num, self.cat, self.objective, labels=joint)


def fit_fold(prep: Prepared, ctx: FoldContext) -> FoldOutput:
    started = time.monotonic()
    cache = prep.state["tables"].cache / f"fold{ctx.fold}"
    tables, rows = fold_setup(prep, ctx.cfg, ctx.fold, ctx.train_idx, ctx.valid_idx, cache)
    cfg = sized(ctx.cfg, len(rows))
    out = fit_on_rows(prep, ctx, cfg, tables, rows, cache,
                      {"sklearn": _fit_sklearn, "booster": _fit_booster, "torch": _fit_network})
    out.info.update(seconds=time.monotonic() - started, train_rows=len(rows))
    return out


def fit_on_rows(prep: Prepared, ctx: FoldContext, cfg, tables: Tables, rows: np.ndarray,
                cache: Path, fits: dict) -> FoldOutput:
    """The text features, preprocessors, objective and model of `rows` (saved in the fold's
    folder), then `fits[kind](model, FoldFit)`: the fold fit's, or a refit's."""
    entry = get_entry(cfg.model.name, "tabular")
    tables, text = fit_fold_text(prep.features.get("text", []), tables, rows, ctx.fold_dir,
                                 cache, model=entry.name, seed=cfg.train.seed + ctx.fold)
    num, cat = _fit_preprocessors(tables, cfg, rows)
    labels = network_labels(prep, cfg, tables)
    objective = Objective.for_fold(cfg, prep.classes, labels[rows],
                                   standardize=entry.kind == "torch")
    bins = fit_bins(cfg, entry, num, tables.train.iloc[rows])
    save_preprocessors(ctx.fold_dir / "preprocessors.json", num, cat, objective.target, bins)
    model = build_fold_model(cfg, entry, num, cat, objective, ctx.device, bins)
    fit = fits.get(entry.kind, fits["torch"])
    return fit(model, FoldFit(ctx, cfg, tables, rows, num, cat, objective, text, labels))


def network_labels(prep: Prepared, cfg: Config, tables: Tables) -> np.ndarray:
    """tables.y; a network shared by several targets (model.joint_targets): every target's."""
    if not cfg.model.joint_targets:
        return tables.y
    return joint_labels(cfg, prep.strata, cfg.data.train)


def _fit_network(model, f: FoldFit) -> FoldOutput:
    """Epochs with early stopping on the fold's validation rows (kit/training/trainer.py);
    a network shared by several targets is trained by the first column's fold only."""
    return shared_fit(f.cfg, f.ctx, lambda ctx: _train_network(model, f, ctx))


def _train_network(model, f: FoldFit, ctx: FoldContext) -> FoldOutput:
    cfg, transform = f.cfg, f.transform()
    trainer = ctx.trainer(cfg, f.objective)
    valid = network_batches(f.tables, cfg, transform, "train", ctx.valid_idx, device=ctx.device)
    train = network_batches(f.tables, cfg, transform, "train", f.rows, shuffle=True,
                            seed=cfg.train.seed + ctx.fold, device=ctx.device)
    result = trainer.fit(model, train, valid, f.labels, resume=ctx.resume,
                         valid_weight=f.tables.w)
    if result.best_path is None:
        raise DataError(f"fold {ctx.fold}: no epoch finished ({result.stop_reason})")
    load_best(model, result.best_path)
    valid_pred = trainer.predict_rows(model, valid, ctx.valid_idx)
    test_pred = predict_test(trainer, model, f.tables, cfg, f.num, f.cat)
    info = {"best_epoch": result.best_epoch, "stop_reason": result.stop_reason}
    return FoldOutput(valid_pred, test_pred, info, history=result.history)


def predict_test(trainer: Trainer, model, tables: Tables, cfg: Config, num, cat) -> np.ndarray:
    """A network's test predictions in test row order: the fold fit's and predict.py's."""
    loader = network_batches(tables, cfg, TabularTransform(num, cat), "test", device=trainer.device)
    return trainer.predict_rows(model, loader, np.arange(len(tables.test)))


def sklearn_arrays(tables: Tables, part: str, rows, num, cat, text=None):
    """The rows as a scikit-learn kind reads them; with the TF-IDF joined (CSR) for linear."""
    frame = _part(tables, part, rows)
    x = np.hstack([num.transform(frame), cat.transform(frame).astype(np.float32)])
    return with_tfidf(x, text, frame)


# skops loads only the types listed here (no pickle: a run folder from a Kaggle dataset
# may come from anyone). These are what the sklearn kinds (HistGradientBoosting*, the
# linear pipeline, the forests) hold besides numpy arrays and builtins.
SKOPS_TRUSTED = ["functools.partial", "sklearn.utils.validation.check_array",
                 "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
                 "sklearn._loss.link.IdentityLink", "sklearn._loss.loss.HalfSquaredError",
                 "sklearn._loss.link.Interval",
                 "sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
                 "sklearn.preprocessing._encoders.OneHotEncoder",
                 "sklearn.linear_model._ridge.Ridge",
                 "sklearn.linear_model._coordinate_descent.Lasso",
                 "sklearn.linear_model._coordinate_descent.ElasticNet",
                 "sklearn.linear_model._logistic.LogisticRegression",
                 "sklearn.ensemble._voting.VotingRegressor",
                 "sklearn.ensemble._voting.VotingClassifier",
                 "kit.models.tabular.WeightedPipeline",  # voting's linear member
                 "sklearn.preprocessing._label.LabelEncoder", "sklearn.utils._bunch.Bunch",
                 "sklearn.tree._tree.Tree", *TEXT_TRUSTED]


def _part(tables: Tables, part: str, rows) -> pd.DataFrame:
    return getattr(tables, part) if rows is None else getattr(tables, part).iloc[rows]


def _fit_booster(model, f: FoldFit) -> FoldOutput:
    """Early stopping on the fold's validation rows; the model in its library's format;
    history.csv (the validation loss per round) and importance.csv beside it."""
    valid_idx = f.ctx.valid_idx
    train = booster_frame(_part(f.tables, "train", f.rows), f.num, f.cat)
    valid = booster_frame(_part(f.tables, "train", valid_idx), f.num, f.cat)
    y_valid = f.objective.batch_target(f.tables.y[valid_idx])
    model.fit(train, f.objective.batch_target(f.tables.y[f.rows]), valid, y_valid,
              weight=row_weights(f.tables, f.rows), valid_weight=row_weights(f.tables, valid_idx))
    out = save_booster(model, f.ctx.fold_dir, f.num, f.cat)
    out.valid_pred = booster_predict(model, valid, f.objective)
    out.test_pred = booster_predict(model, booster_frame(f.tables.test, f.num, f.cat),
                                    f.objective)
    return out


def row_weights(tables: Tables, rows: np.ndarray) -> np.ndarray | None:
    """data.weight of `rows` (None: unweighted)."""
    return None if tables.w is None else tables.w[rows]


def sklearn_predict(model, x: np.ndarray, objective: Objective) -> np.ndarray:
    if objective.regression:
        return objective.to_original(model.predict(x).astype(np.float64)[:, None])
    return model.predict_proba(x).astype(np.float64)


def train_sklearn(model, f: FoldFit):
    """A scikit-learn kind fitted on `f.rows` (linear with the TF-IDF beside its columns)
    and saved as model.skops: (the fitted model, the OpenMP threads it was given)."""
    import skops.io as sio

    if f.text is not None and not f.text.svds:  # linear: one fit over its columns + TF-IDF
        model = TextJoined(model, len(f.num.columns) + len(f.cat.columns))
    x = sklearn_arrays(f.tables, "train", f.rows, f.num, f.cat, f.text)
    # HistGradientBoosting's OpenMP pool has no n_jobs: the fit's share comes from the
    # thread rule (kit.runtime.threads.fit_threads), as the boosters' does
    threads = fit_threads(f.cfg.model.name, *x.shape, num_threads=f.cfg.train.num_threads)
    with threadpool_limits(limits=threads, user_api="openmp"):
        fit_sklearn(model, x, f.objective.batch_target(f.tables.y[f.rows]),
                    row_weights(f.tables, f.rows))
    with atomic_path(f.ctx.fold_dir / "model.skops") as tmp:
        sio.dump(model, tmp)
    return model, threads


def _fit_sklearn(model, f: FoldFit) -> FoldOutput:
    model, threads = train_sklearn(model, f)
    valid = sklearn_predict(model, sklearn_arrays(f.tables, "train", f.ctx.valid_idx, f.num,
                                                  f.cat, f.text), f.objective)
    test = sklearn_predict(model, sklearn_arrays(f.tables, "test", None, f.num, f.cat, f.text),
                           f.objective)
    info = {"model_file": "model.skops"}
    if f.cfg.model.name == "gbdt":  # HistGradientBoosting: the OpenMP threads it was given
        info["threads"] = {"openmp": threads}
    return FoldOutput(valid, test, info)


def _load_sklearn(path: Path):
    import skops.io as sio

    if not path.exists():
        raise CheckpointError(f"{path} is missing; was this fold trained with a sklearn model?")
    untrusted = set(sio.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED)
    if untrusted:
        raise CheckpointError(f"{path} holds types the kit does not load: {sorted(untrusted)}")
    return sio.load(path, trusted=SKOPS_TRUSTED)


def predict_fold(prep: Prepared, cfg: Config, fold_dir: Path, device) -> np.ndarray:
    """Test predictions from a finished fold's saved preprocessors and best model; fold
    features are fitted again on the fold's training rows (the run's folds.csv)."""
    cfg = sized(cfg, len(prep.ids))  # prediction: any batch size gives the same values
    num, cat, target = load_preprocessors(fold_dir / "preprocessors.json")
    bins = load_bins(fold_dir / "preprocessors.json")
    objective = Objective.for_config(cfg, prep.classes, target)
    entry = get_entry(cfg.model.name, "tabular")
    tables, text = load_fold_text(prep.features.get("text", []),
                                  _predict_tables(prep, cfg, Path(fold_dir)), Path(fold_dir),
                                  prep.state["tables"].cache / Path(fold_dir).name)
    if entry.kind == "sklearn":
        model = _load_sklearn(fold_dir / "model.skops")
        x = sklearn_arrays(tables, "test", None, num, cat, text)
        return sklearn_predict(model, x, objective)
    model = build_fold_model(cfg, entry, num, cat, objective, device, bins)
    if entry.kind == "booster":
        path = fold_dir / model.file_name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; was this fold trained with "
                                  f"model.name = {entry.name!r}?")
        return booster_predict(model.load(path), booster_frame(tables.test, num, cat),
                                objective)
    folder = network_folder(cfg, fold_dir)  # a shared network's: <run>/network/<fold>
    load_best(model, best_checkpoint(folder))
    trainer = Trainer(cfg, folder, device, resolve_metric(cfg), objective)
    model.to(device)
    pred = predict_test(trainer, model, tables, cfg, num, cat)
    joint = joint_for(cfg, fold_dir)
    return pred if joint is None else column_pred(pred, joint.column, joint.regression)


def _predict_tables(prep: Prepared, cfg: Config, fold_dir: Path) -> Tables:
    if not prep.state["fold_fns"]:  # extra training rows change the model, not test rows
        return prep.state["tables"]
    if (read_done(fold_dir) or {}).get("refit"):  # fitted on all rows (refit/seed<i>/)
        return all_rows_setup(prep, cfg, prep.state["tables"].cache / f"refit_{fold_dir.name}")[0]
    split = read_folds(fold_dir.parent, prep.ids)
    if split is None:
        raise CheckpointError(f"{fold_dir.parent / 'folds.csv'} is missing: the fold features "
                              "are fitted on the fold's training rows; copy the run folder whole")
    fold = int(fold_dir.name.removeprefix("fold"))
    train_idx, valid_idx = fold_rows(split, fold, cfg.cv.n_splits)
    return fold_setup(prep, cfg, fold, train_idx, valid_idx,
                       prep.state["tables"].cache / fold_dir.name)[0]
