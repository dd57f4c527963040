"""The out-of-core tabular run: a table larger than memory streamed through the whole of
`train.py`, from the source files to the submission, in record batches.

When (`reason`): `data.out_of_core = "auto"` (the default) takes this path when the
training files exceed `data.out_of_core_mb` on disk, or `train.dask_scheduler` is set;
"on" / "off" force either. Smaller tables keep the
in-memory path (kit/tasks/tabular.py under kit/pipeline.py), which has everything this
one refuses below.

Once per run (`prepare`): the source files (a CSV converted once to parquet,
kit/data/sources.py) are read in record batches of BATCH_ROWS; features.py
transform_batch runs on each (target hidden); the target becomes `_y` (a class index, or
the value), the fold `_fold` (a stable hash of the id, or of cv.group: kit/folds.py
hash_folds, the in-memory path's cv.strategy = "hash"), the row number `_row`; the
batches land in one parquet file in the run's cache. Per fold: the preprocessors are
fitted in one pass (kit/data/stream_fit.py); a network (mlp, tabm) trains through
TabularStream filtered on `_fold`; XGBoost trains on a QuantileDMatrix built from a
DataIter over the same batches (on XGBoost's external memory when that matrix would pass
data.out_of_core_xgb_mb), or with xgboost.dask on a cluster; LightGBM on a
Dataset built from lgb.Sequence objects, one per row group. Predictions are
made scan by scan and written batch by batch to parquet; the run's OOF and test files and
the submission are assembled from the folds' files as streams. The submission is checked
against the sample chunk by chunk (the test file's ids in the sample's order, every value
valid) into a temporary file, then renamed.

What stays in memory, by design: per fold, the validation rows' labels and a network's
validation predictions (the metric each epoch), a sample of at most SAMPLE_ROWS training
rows (tabm's bins, a regression's target scaling), XGBoost's labels, gradients and
quantized matrix, LightGBM's labels and binned Dataset.

Refused here, each with its reason (they need the whole table): features.py build(),
fold_features, keep_train_rows and extra_train_rows, features.target_encode, quantile
scaling, cv.repeats > 1, more than one process (torchrun), and model kinds outside
STREAMING_KINDS.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kit import distributed as dist
from kit.config import Config
from kit.data.sources import parquet_sources, source_files
from kit.data.stream import TabularStream, stream_loader
from kit.data.stream_fit import fit_streamed
from kit.data.tabular import save_preprocessors
from kit.errors import ConfigError, DataError
from kit.folds import hash_folds
from kit.hooks import load_hook, map_batches
from kit.io import atomic_path, write_json
from kit.metrics import get_metric
from kit.models import get_entry
from kit.objective import Objective
from kit.runs import oof_frame, pred_columns, pred_frame, scores_dict, write_scores
from kit.stream_metrics import MetricSums
from kit.submission import sample_head, write_streamed_submission
from kit.tasks.tabular import (
    ROW,
    TabularTransform,
    booster_frame,
    booster_predict,
    build_fold_model,
    check_classes,
    feature_columns,
    fit_bins,
    load_best,
    safe_names,
    save_booster,
    sized,
)
from kit.track import make_tracker
from kit.trainer import Trainer

STREAMING_KINDS = ("mlp", "tabm", "xgb", "lgbm")
BATCH_ROWS = 65_536  # rows per record batch read, transformed, predicted and written
SAMPLE_ROWS = 200_000  # training rows sampled per fold for bins and target scaling
VALID_ROWS = 500_000  # at most this many validation rows watched for early stopping
# XGBoost's in-memory QuantileDMatrix per training value, measured (bench_out_of_core's
# table: 5 % missing in five columns, categoricals up to 5,000 levels): 8.9 bytes
QUANTIZED_BYTES = 9
FOLD, Y, PART = "_fold", "_y", "_part"  # PART: 0..99 from a hash of the row number
WHOLE_TABLE_HOOKS = ("build", "fold_features", "keep_train_rows", "extra_train_rows")


def reason(cfg: Config, data_dir: Path) -> str:
    """Why this run streams end to end (module doc), or "" when it does not."""
    mode = cfg.data.out_of_core
    if cfg.competition.task != "tabular" or mode == "off":
        return ""
    if mode == "on":
        return "data.out_of_core = \"on\""
    if cfg.train.dask_scheduler:  # the Dask workers read the prepared parquet
        return f"train.dask_scheduler = {cfg.train.dask_scheduler!r}"
    files = source_files(data_dir, cfg.data.train, "train")
    size = sum(f.stat().st_size for f in files) / 2**20
    if size <= cfg.data.out_of_core_mb:
        return ""
    return f"the training files ({size:,.0f} MB) pass data.out_of_core_mb = {cfg.data.out_of_core_mb:g}"


def check_supported(cfg: Config, comp_dir: Path, why: str) -> None:
    """Refuse, before anything is read or written, what needs the whole table."""
    why = f"this run streams out of core ({why})"
    entry = get_entry(cfg.model.name, "tabular")
    if entry.name not in STREAMING_KINDS:
        raise ConfigError(f"model.name = {entry.name!r} cannot stream: {why}; the kinds that "
                          f"stream are {', '.join(STREAMING_KINDS)} (--set model.name=xgb), "
                          "or sample the table, or set data.out_of_core = \"off\" if it fits")
    if cfg.train.dask_scheduler and entry.name != "xgb":
        raise ConfigError(f"train.dask_scheduler = {cfg.train.dask_scheduler!r} trains xgb "
                          f"(xgboost.dask), not model.name = {entry.name!r}; set "
                          "model.name = \"xgb\" or train.dask_scheduler = \"\"")
    needs = [f"features.py {name}()" for name in WHOLE_TABLE_HOOKS
             if (name != "fold_features" or cfg.features.fold_hook)
             and load_hook(comp_dir, "features", name) is not None]
    needs += [label for label, used in (
        ("features.target_encode", bool(cfg.features.target_encode)),
        ("features.scaling = \"quantile\"", cfg.features.scaling == "quantile"),
        (f"cv.repeats = {cfg.cv.repeats}", cfg.cv.repeats > 1)) if used]
    if needs:
        raise ConfigError(f"{why}, and {', '.join(needs)} need(s) the whole table in memory; "
                          "move row-local features to features.py transform_batch(frame), drop "
                          "the others, or set data.out_of_core = \"off\" if the table fits")
    if dist.info().world_size > 1:
        raise ConfigError(f"{why}: it runs in one process; drop torchrun, or use "
                          "train.dask_scheduler with xgb")


@dataclass
class Streamed:
    """The prepared parquet files of an out-of-core run and what one pass learned."""

    train: Path  # id, features, _row, _y, _fold
    test: Path  # id, features, _row
    numeric: list[str]
    categorical: list[str]
    classes: list
    fold_rows: np.ndarray  # rows per fold
    balance: pd.DataFrame  # per fold: rows and class shares, or the target mean


def prepare(cfg: Config, comp_dir: Path, data_dir: Path, cache: Path) -> Streamed:
    """The one pass over the sources (module doc): cache/train.parquet, cache/test.parquet."""
    d = cfg.data
    kw = {"dtypes": d.dtypes, "cache_dir": cache}
    train_files = parquet_sources(data_dir, d.train, what="train", required=[d.id, d.target], **kw)
    test_files = parquet_sources(data_dir, d.test, what="test", required=[d.id], **kw)
    classes = (_classes(cfg, train_files, data_dir)
               if cfg.competition.problem == "classification" else [])
    hook = load_hook(comp_dir, "features", "transform_batch")
    where = str(comp_dir / "features.py")
    cache.mkdir(parents=True, exist_ok=True)
    writer = _Prepared(cfg, classes, train=True)
    columns = writer.write(train_files, cache / "train.parquet", hook, where)
    _Prepared(cfg, classes, train=False, columns=columns).write(
        test_files, cache / "test.parquet", hook, where)
    numeric, categorical = columns
    return Streamed(cache / "train.parquet", cache / "test.parquet", numeric, categorical,
                    classes, writer.fold_rows, writer.balance())


def _classes(cfg: Config, files: list[Path], data_dir: Path) -> list:
    """The target's sorted values, from a pass over the target column alone."""
    target, values, rows = cfg.data.target, set(), 0
    for batch in pq_batches(files, [target]):
        column = batch.column(0)
        if column.null_count:
            row = rows + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{files[0].parent}: target {target!r} is missing in row {row}; "
                            "drop the unlabelled rows or fix data.target")
        values.update(pc.unique(column).to_pylist())
        rows += batch.num_rows
        if len(values) > 1000:
            raise DataError(f"{files[0]}: target {target!r} has over 1000 distinct values; "
                            "a regression? set competition.problem = \"regression\"")
    classes = sorted(values)
    if len(classes) < 2:
        raise DataError(f"{files[0]}: target {target!r} has one value {classes}; nothing to "
                        "learn")
    check_classes(cfg, classes, data_dir)
    return classes


def pq_batches(files: list[Path], columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The files' record batches in order (row groups in file order, BATCH_ROWS at most).
    One row group at a time: ParquetFile.iter_batches over a whole file reads ahead of a
    slow consumer without bound (measured: 3.4 GB more at 10M rows)."""
    for path in files:
        file = pq.ParquetFile(path)
        for group in range(file.num_row_groups):
            yield from file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group],
                                         columns=columns, use_threads=False)


class _Prepared:
    """Writes one prepared parquet file batch by batch (module doc), atomically."""

    def __init__(self, cfg: Config, classes: list, *, train: bool, columns=None):
        self.cfg, self.classes, self.train, self.columns = cfg, classes, train, columns
        k = cfg.cv.n_splits
        self.fold_rows = np.zeros(k, dtype=np.int64)
        self.counts = np.zeros((k, max(len(classes), 1)))  # rows per fold and class, or sums

    def write(self, files: list[Path], dest: Path, hook, where: str):
        from tqdm import tqdm

        d, schema, writer, offset = self.cfg.data, None, None, 0
        total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        with atomic_path(dest) as tmp, tqdm(total=total, unit=" rows", unit_scale=True,
                                            leave=False, desc=f"preparing {dest.stem}") as bar:
            try:
                for batch in pq_batches(files):
                    frame = batch.to_pandas()
                    if hook is not None:
                        frame = map_batches(hook, frame, hide=(d.target,) if self.train else (),
                                            where=where)
                    out = self._columns(frame, files[0], offset)
                    table = pa.Table.from_pandas(out, preserve_index=False)
                    if schema is None:
                        schema = _nullable_filled(table.schema, batch.schema)
                        writer = pq.ParquetWriter(tmp, schema)
                    writer.write_table(_cast(table, schema, files[0], offset), BATCH_ROWS)
                    offset += len(out)
                    bar.update(len(out))
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise DataError(f"{files[0]} has no rows")
        return self.columns

    def _columns(self, frame: pd.DataFrame, path: Path, offset: int) -> pd.DataFrame:
        d, cv = self.cfg.data, self.cfg.cv
        if self.columns is None:  # "auto" decided on the first batch, as the hook shaped it
            self.columns = feature_columns(self.cfg, frame)
        numeric, categorical = self.columns
        missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: no feature column(s) {missing} after features.py; fix "
                            "features.numeric / features.categorical in config.toml")
        keep = [d.id, *numeric, *categorical]
        out = frame[keep].copy()
        out[ROW] = np.arange(offset, offset + len(frame), dtype=np.int64)
        if not self.train:
            return out
        out[Y] = self._target(frame[d.target], path, offset)
        keys = frame[cv.group] if cv.group else frame[d.id]
        out[FOLD] = hash_folds(keys.to_numpy(), cv.n_splits, cv.seed).astype(np.int8)
        out[PART] = (out[ROW].to_numpy().astype(np.uint64) * np.uint64(2654435761)
                     % np.uint64(2**32) % np.uint64(100)).astype(np.int8)
        self.fold_rows += np.bincount(out[FOLD], minlength=cv.n_splits)
        if self.classes:
            np.add.at(self.counts, (out[FOLD].to_numpy(), out[Y].to_numpy()), 1)
        else:
            np.add.at(self.counts[:, 0], out[FOLD].to_numpy(), out[Y].to_numpy())
        return out

    def _target(self, target: pd.Series, path: Path, offset: int) -> np.ndarray:
        name = self.cfg.data.target
        if self.classes:
            return pd.Index(self.classes).get_indexer(target).astype(np.int64)
        y = pd.to_numeric(target, errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(y)
        if bad.any():
            row = offset + int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: target {name!r} is missing or not a number in row {row} "
                            f"({target.iloc[int(np.flatnonzero(bad)[0])]!r}); fix or drop it")
        return y

    def balance(self) -> pd.DataFrame:
        rows = self.fold_rows
        if not self.classes:
            return pd.DataFrame({"rows": rows, "target_mean": self.counts[:, 0] / np.maximum(rows, 1)})
        shares = self.counts / np.maximum(rows, 1)[:, None]
        table = pd.DataFrame(shares, columns=[f"share_{c}" for c in self.classes])
        table.insert(0, "rows", rows)
        return table


def _nullable_filled(schema: pa.Schema, source: pa.Schema) -> pa.Schema:
    """A column that is all missing in the first batch gets its source type, or string."""
    fields = []
    for f in schema:
        if pa.types.is_null(f.type):
            f = f.with_type(source.field(f.name).type if f.name in source.names else pa.string())
        fields.append(f)
    return pa.schema(fields)


def _cast(table: pa.Table, schema: pa.Schema, path: Path, offset: int) -> pa.Table:
    if table.schema.equals(schema):
        return table
    if table.schema.names != schema.names:
        raise DataError(f"{path}: rows from {offset} give columns {table.schema.names[:8]}, the "
                        f"first rows {schema.names[:8]}; features.py transform_batch must return "
                        "the same columns for every batch")
    for name in schema.names:
        want, got = schema.field(name).type, table.schema.field(name).type
        if want != got and not pa.types.is_null(got):
            try:
                table = table.set_column(schema.get_field_index(name), name,
                                         table.column(name).cast(want))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(f"{path}: column {name!r} holds {got} from row {offset} on, "
                                f"{want} before; set data.dtypes = {{{name!r} = \"string\"}} "
                                "(or float64) in config.toml") from None
    return table.cast(schema)


# --- one fold --------------------------------------------------------------------------------


def scan(path: Path, columns: list[str], fold: int, *, valid: bool, parts: int = 100
         ) -> Iterator[pd.DataFrame]:
    """The fold's training rows (valid=False) or validation rows (with `parts` < 100: the
    validation rows whose PART is below it), in file order."""
    for batch in pq_batches([path], [*columns, FOLD, PART]):
        rows = batch.filter(_rows_mask(batch, fold, valid, parts))
        if rows.num_rows:
            yield rows.select(columns).to_pandas()


def _rows_mask(table, fold: int, valid: bool, parts: int = 100):
    """The fold's training rows, or its validation rows with PART below `parts`."""
    if not valid:
        return pc.not_equal(table[FOLD], fold)
    mask = pc.equal(table[FOLD], fold)
    return pc.and_(mask, pc.less(table[PART], parts)) if parts < 100 else mask


class _Sample:
    """A seeded Bernoulli sample of about `limit` of `total` rows, gathered while streaming."""

    def __init__(self, total: int, limit: int, seed: int):
        self.rate = min(1.0, limit / max(total, 1))
        self.rng, self.parts = np.random.default_rng(seed), []

    def tap(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            keep = frame if self.rate >= 1 else frame[self.rng.random(len(frame)) < self.rate]
            self.parts.append(keep)
            yield frame

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True)


class _ByRow:
    """Labels of the validation rows looked up by row number (`index` in the batches)."""

    def __init__(self, rows: np.ndarray, labels: np.ndarray):
        self.rows, self.labels = rows, labels

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.labels[np.searchsorted(self.rows, index)]


def fit_fold(st: Streamed, cfg: Config, fold: int, fold_dir: Path, device, tracker,
             deadline, client=None) -> dict:
    """Train fold `fold`; write its oof.parquet and test_pred.parquet batch by batch."""
    started = time.monotonic()
    entry = get_entry(cfg.model.name, "tabular")
    features = [*st.numeric, *st.categorical]
    n_train = int(st.fold_rows.sum() - st.fold_rows[fold])
    cfg = sized(cfg, n_train)
    sample = _Sample(n_train, SAMPLE_ROWS, cfg.train.seed + fold)
    num, cat = fit_streamed(sample.tap(scan(st.train, [*features, Y], fold, valid=False)),
                            st.numeric, st.categorical, log1p_skewed=cfg.features.log1p_skewed,
                            seed=cfg.train.seed + fold)
    fit_rows = sample.frame()
    objective = Objective.for_fold(cfg, st.classes, fit_rows[Y].to_numpy(),
                                   standardize=entry.kind == "torch")
    bins = fit_bins(cfg, entry, num, fit_rows)
    del fit_rows, sample
    save_preprocessors(fold_dir / "preprocessors.json", num, cat, objective.target, bins)
    model = build_fold_model(cfg, entry, num, cat, objective, device, bins)
    if entry.kind == "torch":
        predict, info = _fit_network(model, st, cfg, fold, fold_dir, device, num, cat,
                                     objective, tracker, deadline)
    else:
        fit = {"xgb": _fit_xgb, "lgbm": _fit_lgbm}[entry.name] if client is None \
            else _fit_xgb_dask
        predict, info = fit(cfg, model, st, fold, fold_dir, num, cat, objective, client)
    _write_preds(fold_dir / "oof.parquet", scan(st.train, [cfg.data.id, *features, Y], fold,
                                                valid=True), predict, st.classes, fold=fold,
                 id_col=cfg.data.id)
    _write_preds(fold_dir / "test_pred.parquet",
                 (b.to_pandas() for b in pq_batches([st.test], [cfg.data.id, *features])),
                 predict, st.classes, id_col=cfg.data.id)
    info.update(seconds=time.monotonic() - started, train_rows=n_train)
    return info


def valid_parts(st: Streamed, fold: int) -> int:
    """Early stopping (a network's epochs, a booster's rounds) watches at most about
    VALID_ROWS of the fold's validation rows: those whose PART is below this. The fold's
    score and OOF cover them all."""
    return min(100, int(np.ceil(100 * VALID_ROWS / max(int(st.fold_rows[fold]), 1))))


def _fit_network(model, st: Streamed, cfg: Config, fold: int, fold_dir: Path, device, num, cat,
                 objective, tracker, deadline):
    import torch

    columns = [ROW, *st.numeric, *st.categorical, Y]
    transform = TabularTransform(num, cat, objective)

    parts = valid_parts(st, fold)
    train = stream_loader(TabularStream(
        st.train, columns=columns, transform=transform, batch_size=cfg.train.batch_size,
        filter=pc.field(FOLD) != fold, shuffle=True, seed=cfg.train.seed + fold,
        drop_last=True), num_workers=cfg.train.num_workers)
    flt = (pc.field(FOLD) == fold) & (pc.field(PART) < parts)
    valid = stream_loader(TabularStream(st.train, columns=columns, transform=transform,
                                        batch_size=cfg.train.batch_size, filter=flt))
    rows, labels = [], []
    for frame in scan(st.train, [ROW, Y], fold, valid=True, parts=parts):
        rows.append(frame[ROW].to_numpy())
        labels.append(frame[Y].to_numpy())
    by_row = _ByRow(np.concatenate(rows), np.concatenate(labels))
    metric = get_metric(cfg.competition.metric, cfg.competition.problem)
    trainer = Trainer(cfg, fold_dir, device, metric, objective, deadline=deadline,
                      desc=f"fold {fold}", tracker=tracker)
    result = trainer.fit(model, train, valid, by_row)
    if result.best_path is None:
        raise DataError(f"fold {fold}: no epoch finished ({result.stop_reason})")
    load_best(model, result.best_path)
    model.to(device).eval()
    plain = TabularTransform(num, cat)

    @torch.no_grad()
    def predict(frame: pd.DataFrame) -> np.ndarray:
        arrays = plain(frame.assign(**{ROW: 0}))
        out = []
        for start in range(0, len(frame), 8192):
            x = {k: torch.from_numpy(arrays[k][start:start + 8192]).to(device)
                 for k in ("x_num", "x_cat")}
            out.append(objective.predict(model(**x)).float().cpu())
        return objective.to_original(torch.cat(out).double().numpy())

    return predict, {"best_epoch": result.best_epoch, "stop_reason": result.stop_reason}


def _fit_xgb(cfg: Config, model, st: Streamed, fold: int, fold_dir: Path, num, cat, objective, client=None):
    import xgboost as xgb

    features = [*st.numeric, *st.categorical]

    class Batches(xgb.DataIter):
        """The fold's rows as (booster frame, label) batches; XGBoost may pass twice."""

        def __init__(self, valid: bool, cache_prefix: str | None = None):
            self.valid, self.frames = valid, None
            super().__init__(cache_prefix=cache_prefix)

        def reset(self) -> None:
            self.frames = None

        def next(self, input_data) -> bool:
            if self.frames is None:
                self.frames = scan(st.train, [*features, Y], fold, valid=self.valid,
                                   parts=valid_parts(st, fold) if self.valid else 100)
            frame = next(self.frames, None)
            if frame is None:
                return False
            input_data(data=booster_frame(frame, num, cat),
                       label=objective.batch_target(frame[Y].to_numpy()))
            return True

    threads = model.num_threads
    rows = int(st.fold_rows.sum() - st.fold_rows[fold])
    quantized = rows * len(features) * QUANTIZED_BYTES
    budget = xgb_memory_budget(cfg)
    if quantized <= budget:
        data = xgb.QuantileDMatrix(Batches(False), enable_categorical=True, nthread=threads)
        held = xgb.QuantileDMatrix(Batches(True), ref=data, enable_categorical=True,
                                   nthread=threads)
    else:  # pages cached on disk and fetched per tree level (XGBoost's external memory;
        # its docs advise the default depthwise growth there, not lossguide)
        cache = str(fold_dir / "xgb-cache" / "pages")
        (fold_dir / "xgb-cache").mkdir(exist_ok=True)
        data = xgb.ExtMemQuantileDMatrix(Batches(False, cache), enable_categorical=True,
                                         nthread=threads)
        held = xgb.ExtMemQuantileDMatrix(Batches(True, cache + "-valid"), ref=data,
                                         enable_categorical=True, nthread=threads)
        print(f"fold {fold}: xgb on external memory (its matrix, about {quantized / 2**20:,.0f}"
              f" MB, passes the {budget / 2**20:,.0f} MB budget), pages in {cache}")
    model.fit_matrices(data, held)
    del data, held
    shutil.rmtree(fold_dir / "xgb-cache", ignore_errors=True)
    info = save_booster(model, fold_dir, num, cat)
    info["xgb_matrix"] = "quantile" if quantized <= budget else "external"
    return (lambda frame: booster_predict(model, booster_frame(frame, num, cat), objective)), info


def _fit_lgbm(cfg: Config, model, st: Streamed, fold: int, fold_dir: Path, num, cat, objective, client=None):
    """LightGBM's Dataset from lgb.Sequence objects, one per row group of the prepared
    parquet, each read when LightGBM asks for its rows (a sample for the bins, then all
    of them once, in order); the labels are held, as LightGBM needs them whole."""
    import lightgbm as lgb

    lgb.Sequence.register(_GroupRows)  # an ABC: LightGBM checks isinstance
    features = [*st.numeric, *st.categorical]
    names = safe_names(features)
    categorical = list(range(len(st.numeric), len(features)))

    def matrix(frame: pd.DataFrame) -> np.ndarray:  # booster_frame's values, category codes
        return np.hstack([num.values(frame), cat.transform(frame).astype(np.float64)])

    def dataset(valid: bool, reference=None):
        seqs, labels = [], []
        file = pq.ParquetFile(st.train)
        parts = valid_parts(st, fold) if valid else 100
        for group in range(file.num_row_groups):
            table = file.read_row_group(group, columns=[FOLD, PART, Y])
            y = table.filter(_rows_mask(table, fold, valid, parts))[Y].to_numpy()
            if len(y):
                seqs.append(_GroupRows(st.train, group, len(y), (fold, valid, parts), features,
                                       matrix))
                labels.append(y)
        return lgb.Dataset(seqs, label=objective.batch_target(np.concatenate(labels)),
                           feature_name=names, categorical_feature=categorical,
                           reference=reference, free_raw_data=True)

    data = dataset(False)
    model.fit_datasets(data, dataset(True, data))
    del data
    info = save_booster(model, fold_dir, num, cat)
    return (lambda frame: booster_predict(model, matrix(frame), objective)), info


class _GroupRows:
    """One row group's training (or validation) rows as LightGBM's Sequence: read and
    converted when first asked for, one group held at a time (a class-wide slot)."""

    batch_size = BATCH_ROWS
    _held: tuple = (None, None)

    def __init__(self, path, group, rows, which, features, matrix):
        self.key = (str(path), group, *which)  # which: (fold, valid, parts)
        self.rows, self.features, self.matrix = rows, features, matrix

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index):
        key, x = _GroupRows._held
        if key != self.key:
            path, group, fold, valid, parts = self.key
            table = pq.ParquetFile(path).read_row_group(group,
                                                        columns=[*self.features, FOLD, PART])
            rows = table.filter(_rows_mask(table, fold, valid, parts))
            x = self.matrix(rows.select(self.features).to_pandas())
            _GroupRows._held = (self.key, x)
        return x[index]


def xgb_memory_budget(cfg: Config) -> int:
    """Bytes XGBoost's quantized training matrix may take before it goes to external
    memory: data.out_of_core_xgb_mb, or half the memory available now."""
    if cfg.data.out_of_core_xgb_mb:
        return int(cfg.data.out_of_core_xgb_mb * 2**20)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):  # not Linux: assume it fits
        return 1 << 62


def _fit_xgb_dask(cfg: Config, model, st: Streamed, fold: int, fold_dir: Path, num, cat, objective, client):
    """xgboost.dask over the prepared parquet read by dask.dataframe: each partition becomes
    a booster frame on its worker; predictions are then made here, batch by batch."""
    import dask.dataframe as dd

    features = [*st.numeric, *st.categorical]
    frame = dd.read_parquet(str(st.train), columns=[*features, Y, FOLD], split_row_groups=True)
    workers = len(client.scheduler_info()["workers"])
    if frame.npartitions < workers:  # every worker gets rows
        frame = frame.repartition(npartitions=workers)
    meta = booster_frame(frame._meta, num, cat)

    def part(valid: bool):
        rows = frame[(frame[FOLD] == fold) if valid else (frame[FOLD] != fold)]
        x = rows.map_partitions(booster_frame, num, cat, meta=meta)
        y = rows[Y].map_partitions(lambda s: pd.Series(objective.batch_target(s.to_numpy()),
                                                       index=s.index), meta=(Y, "f8"))
        return _spread(client, x, y)

    holding = model.fit_dask(client, *part(False), *part(True))
    info = save_booster(model, fold_dir, num, cat)
    info.update(dask_scheduler=str(client.scheduler.address), dask_workers=holding)
    return (lambda rows: booster_predict(model, booster_frame(rows, num, cat), objective)), info


def _spread(client, x, y):
    """x and y computed partition by partition, round-robin over the workers, the i-th of
    each on the same one, and handed back as persisted collections, so that xgboost.dask
    finds every worker holding rows. Left to the scheduler, a small table's partitions can
    all land on one worker (dask.dataframe marks its readers' tasks as data producers, placed
    anywhere), and xgboost.dask fails on a worker without rows when a column is categorical."""
    workers = sorted(client.scheduler_info()["workers"])

    def placed(frame):
        futures = {part.key: client.compute(part, workers=[workers[i % len(workers)]])
                   for i, part in enumerate(frame.to_delayed())}
        rebuild, args = frame.__dask_postpersist__()
        return rebuild(futures, *args)

    return placed(x), placed(y)


def dask_client(spec: str):
    """A dask.distributed Client: a LocalCluster of N worker processes for "local:N", else
    the scheduler at `spec`. Needs the [dask] extra."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(f"train.dask_scheduler = {spec!r} needs Dask: pip install -e \".[dask]\""
                          ) from None
    if spec.startswith("local:"):
        cluster = LocalCluster(n_workers=int(spec[6:]), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster)
    try:
        return Client(spec, timeout="30s")
    except OSError as exc:
        raise ConfigError(f"train.dask_scheduler = {spec!r}: no scheduler answered ({exc}); "
                          "start one (dask scheduler) and its workers, or use \"local:N\"") from None


def _write_preds(dest: Path, frames: Iterator[pd.DataFrame], predict, classes: list, *,
                 id_col: str, fold: int | None = None) -> None:
    """Predictions of `frames` written batch by batch: oof.parquet's columns with a fold,
    test_pred.parquet's without."""
    writer = None
    with atomic_path(dest) as tmp:
        try:
            for frame in frames:
                pred = predict(frame)
                if fold is None:
                    out = pred_frame(frame[id_col].to_numpy(), pred, classes)
                else:
                    y = frame[Y].to_numpy()
                    targets = np.asarray(classes, dtype=object)[y] if classes else y
                    out = oof_frame(frame[id_col].to_numpy(), fold, targets, pred, classes)
                    out.insert(2, "repeat", 0)
                table = pa.Table.from_pandas(out, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise DataError(f"{dest}: no rows to predict (an empty fold?)")


# --- the run ---------------------------------------------------------------------------------


def run(cfg: Config, opts, comp_dir: Path, why: str) -> dict:
    """pipeline.run_cv for a table larger than memory (module doc); `opts` a RunOptions,
    `why` what reason() said."""
    check_supported(cfg, comp_dir, why)
    started = time.monotonic()
    deadline = started + opts.max_time if opts.max_time else None
    metric = get_metric(cfg.competition.metric, cfg.competition.problem)
    sample_path = opts.data_dir / cfg.data.sample_submission
    head = sample_head(sample_path)
    key = cfg.cv.group or cfg.data.id
    print(f"out of core ({why}): streamed from parquet in batches of {BATCH_ROWS:,} rows; "
          f"folds by a hash of {key!r} (cv.strategy = \"hash\", not stratified)")
    st = prepare(cfg, comp_dir, opts.data_dir, opts.run_dir / "cache")
    print(f"fold balance ({int(st.fold_rows.sum()):,} rows):\n{st.balance.to_string()}")
    n_folds = min(opts.folds or cfg.cv.n_splits, cfg.cv.n_splits)
    tracker = make_tracker(cfg, opts.run_dir, main=True)
    client = dask_client(cfg.train.dask_scheduler) if cfg.train.dask_scheduler else None
    try:
        fold_scores, infos = _folds(cfg, opts, st, n_folds, metric, tracker, deadline, client)
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    if not fold_scores:
        raise DataError("no fold finished (time budget too small?); nothing to submit")
    folds = [opts.run_dir / f"fold{k}" for k in range(len(fold_scores))]
    _concat([f / "oof.parquet" for f in folds], opts.run_dir / "oof.parquet")
    oof_score = _score(metric, [opts.run_dir / "oof.parquet"], st.classes)
    scores = scores_dict(metric, cfg.competition.problem, fold_scores, oof_score, st.classes,
                         n_folds_trained=len(fold_scores), n_splits=cfg.cv.n_splits,
                         repeats=1, repeat_means=[], fold_info=infos,
                         split=f"hash:{key}:{cfg.cv.n_splits}:{cfg.cv.seed}", out_of_core=True)
    copy = submission = None
    kind = cfg.submission.resolved_kind(cfg.competition.problem)
    with atomic_path(opts.run_dir / "test_pred.parquet") as test_tmp:
        batches = _mean_test(folds, st.classes, cfg.ensemble.fold_vote, test_tmp)
        if opts.submit:
            submission = write_streamed_submission(
                batches, st.classes, sample_path, head, opts.run_dir / "submission.csv",
                kind=kind, metric=metric.name)
            marked = not opts.label or opts.run_dir.name.endswith(f"_{opts.label}")
            name = opts.run_dir.name + ("" if marked else f"_{opts.label}") + ".csv"
            copy = opts.submissions_dir / cfg.competition.slug / name
            with atomic_path(copy) as tmp:
                shutil.copyfile(submission, tmp)
        else:
            for _ in batches:
                pass
    scores["seconds"] = time.monotonic() - started
    write_scores(opts.run_dir, scores)
    seconds = time.monotonic() - started
    print(f"CV {metric.name}: {scores['mean']:.4f} ± {scores['std']:.4f} over "
          f"{len(fold_scores)} folds (OOF {oof_score:.4f}) in {seconds:.1f}s")
    if copy is not None:
        print(f"submission: {copy}")
    summary = {"run_dir": str(opts.run_dir), "submission": copy and str(copy),
               "run_submission": submission and str(submission),
               "cv": {"metric": metric.name, "mean": scores["mean"], "std": scores["std"],
                      "folds": scores["folds"], "oof": scores["oof"], "repeat_means": []},
               "seconds": seconds}
    tracker.finish_cv(summary["cv"])
    return summary


def _folds(cfg, opts, st, n_folds, metric, tracker, deadline, client):
    """Train the folds not yet done (done.json), score each from its oof.parquet."""
    fold_scores, infos = [], []
    for k in range(n_folds):
        fold_dir = opts.run_dir / f"fold{k}"
        done = fold_dir / "done.json"
        if not done.exists():
            if deadline is not None and time.monotonic() >= deadline:
                print(f"time budget reached before fold {k}; keeping {k} finished folds")
                break
            fold_dir.mkdir(parents=True, exist_ok=True)
            tracker.start_fold(k)
            write_json(done, fit_fold(st, cfg, k, fold_dir, opts.device, tracker, deadline,
                                      client))
        score = _score(metric, [fold_dir / "oof.parquet"], st.classes)
        print(f"fold {k}: {metric.name} {score:.4f}")
        tracker.finish_fold({"fold": k, "score": score})
        if opts.on_fold is not None:
            opts.on_fold(k, score)
        fold_scores.append(score)
        infos.append(json.loads(done.read_text()))
    return fold_scores, infos


def _score(metric, files: list[Path], classes: list) -> float:
    """The metric over prediction files, summed batch by batch (kit/stream_metrics.py)."""
    cols = pred_columns(classes)
    sums = MetricSums(metric, len(classes))
    for batch in pq_batches(files, ["target", *cols]):
        target = batch.column(0).to_pandas()
        y = pd.Index(classes).get_indexer(target) if classes else target.to_numpy(np.float64)
        sums.add(y, np.column_stack([batch.column(c).to_numpy() for c in cols]))
    score = sums.value()
    if sums.bound > 1e-4:
        print(f"{metric.name} from binned predictions: within {sums.bound:.1e} of the exact value")
    return score


def _concat(parts: list[Path], dest: Path) -> None:
    """Parquet files of one schema, one after the other, batch by batch, into `dest`."""
    with atomic_path(dest) as tmp:
        writer = pq.ParquetWriter(tmp, pq.read_schema(parts[0]))
        try:
            for batch in pq_batches(parts):
                writer.write_batch(batch)
        finally:
            writer.close()


def _mean_test(folds: list[Path], classes: list, vote: str, dest: Path
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, prediction) batches of the folds' mean test prediction (or their hard vote),
    written to `dest` as they pass; the folds' files share one row order."""
    from kit.blending import fold_vote_hard

    cols = pred_columns(classes)
    readers = [pq_batches([f / "test_pred.parquet"]) for f in folds]
    writer = None
    try:
        for parts in zip(*readers, strict=True):
            frames = [p.to_pandas() for p in parts]
            ids = frames[0]["id"].to_numpy()
            preds = [f[cols].to_numpy() for f in frames]
            mean = fold_vote_hard(preds) if vote == "hard" else np.mean(preds, axis=0)
            table = pa.Table.from_pandas(pred_frame(ids, mean, classes), preserve_index=False)
            writer = writer or pq.ParquetWriter(dest, table.schema)
            writer.write_table(table)
            yield ids, mean
    finally:
        if writer is not None:
            writer.close()
