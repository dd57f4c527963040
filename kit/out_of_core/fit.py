"""One fold of an out-of-core run (package doc): the preprocessors fitted in one pass, the
model trained per kind on the prepared table, its predictions written batch by batch."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kit.config import Config
from kit.data.stream import TabularStream, stream_loader
from kit.data.stream_fit import fit_streamed
from kit.data.tabular import save_preprocessors
from kit.errors import DataError
from kit.io import atomic_path
from kit.models import get_entry
from kit.objective import Objective
from kit.out_of_core.dask_xgb import fit_xgb_dask
from kit.out_of_core.prepared import (
    BATCH_ROWS,
    FOLD,
    PART,
    Streamed,
    W,
    Y,
    pq_batches,
    rows_mask,
    scan,
    valid_parts,
)
from kit.run_folder import oof_frame, pred_frame
from kit.tasks import FoldContext, FoldOutput
from kit.tasks.tabular.models import (
    TabularTransform,
    booster_frame,
    booster_predict,
    build_fold_model,
    fit_bins,
    load_best,
    safe_names,
    save_booster,
    sized,
)
from kit.tasks.tabular.tables import ROW

SAMPLE_ROWS = 200_000  # training rows sampled per fold for bins and target scaling
# XGBoost's in-memory QuantileDMatrix per training value, measured (bench_out_of_core's
# table: 5 % missing in five columns, categoricals up to 5,000 levels): 8.9 bytes
QUANTIZED_BYTES = 9


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
    """Labels (or weights) of the validation rows looked up by row number (`index` in the
    batches)."""

    def __init__(self, rows: np.ndarray, labels: np.ndarray):
        self.rows, self.labels = rows, labels

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.labels[np.searchsorted(self.rows, index)]


def fit_fold(st: Streamed, ctx: FoldContext, client=None) -> FoldOutput:
    """Train fold `ctx.fold`; write its oof.parquet and test_pred.parquet batch by batch
    (the output's predictions are None: they are in those files)."""
    started = time.monotonic()
    cfg, fold, fold_dir = ctx.cfg, ctx.fold, ctx.fold_dir
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
    model = build_fold_model(cfg, entry, num, cat, objective, ctx.device, bins)
    if entry.kind == "torch":
        predict, out = _fit_network(model, st, ctx, cfg, num, cat, objective)
    else:
        fit = {"xgb": _fit_xgb, "lgbm": _fit_lgbm}[entry.name] if client is None \
            else fit_xgb_dask
        predict, out = fit(cfg, model, st, fold, fold_dir, num, cat, objective, client)
    _write_preds(fold_dir / "oof.parquet", scan(st.train, [cfg.data.id, *features, Y,
                                                       *_weighted(cfg)], fold, valid=True),
                 predict, st.classes, fold=fold, id_col=cfg.data.id)
    _write_preds(fold_dir / "test_pred.parquet",
                 (b.to_pandas() for b in pq_batches([st.test], [cfg.data.id, *features])),
                 predict, st.classes, id_col=cfg.data.id)
    out.info.update(seconds=time.monotonic() - started, train_rows=n_train)
    return out


def _weighted(cfg: Config) -> list[str]:
    """The weight column to read with the rows: [W] under data.weight, else none."""
    return [W] if cfg.data.weight else []


def _fit_network(model, st: Streamed, ctx: FoldContext, cfg: Config, num, cat, objective):
    import torch

    fold, device = ctx.fold, ctx.device
    columns = [ROW, *st.numeric, *st.categorical, Y, *_weighted(cfg)]  # W: batches' "w"
    transform = TabularTransform(num, cat, objective)

    parts = valid_parts(st, fold)
    train = stream_loader(TabularStream(
        st.train, columns=columns, transform=transform, batch_size=cfg.train.batch_size,
        filter=pc.field(FOLD) != fold, shuffle=True, seed=cfg.train.seed + fold,
        drop_last=True), num_workers=cfg.train.num_workers)
    flt = (pc.field(FOLD) == fold) & (pc.field(PART) < parts)
    valid = stream_loader(TabularStream(st.train, columns=columns, transform=transform,
                                        batch_size=cfg.train.batch_size, filter=flt))
    rows, labels, weights = [], [], []
    for frame in scan(st.train, [ROW, Y, *_weighted(cfg)], fold, valid=True, parts=parts):
        rows.append(frame[ROW].to_numpy())
        labels.append(frame[Y].to_numpy())
        weights.append(frame[W].to_numpy() if cfg.data.weight else None)
    rows = np.concatenate(rows)
    by_row = _ByRow(rows, np.concatenate(labels))
    valid_weight = _ByRow(rows, np.concatenate(weights)) if cfg.data.weight else None
    trainer = ctx.trainer(cfg, objective)
    result = trainer.fit(model, train, valid, by_row, valid_weight=valid_weight)
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

    info = {"best_epoch": result.best_epoch, "stop_reason": result.stop_reason}
    return predict, FoldOutput(None, None, info, history=result.history)


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
                self.frames = scan(st.train, [*features, Y, *_weighted(cfg)], fold,
                                   valid=self.valid,
                                   parts=valid_parts(st, fold) if self.valid else 100)
            frame = next(self.frames, None)
            if frame is None:
                return False
            weight = {"weight": frame[W].to_numpy()} if cfg.data.weight else {}
            input_data(data=booster_frame(frame, num, cat),
                       label=objective.batch_target(frame[Y].to_numpy()), **weight)
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
    out = save_booster(model, fold_dir, num, cat)
    out.info["xgb_matrix"] = "quantile" if quantized <= budget else "external"
    return (lambda frame: booster_predict(model, booster_frame(frame, num, cat), objective)), out


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
        seqs, labels, weights = [], [], []
        file = pq.ParquetFile(st.train)
        parts = valid_parts(st, fold) if valid else 100
        for group in range(file.num_row_groups):
            table = file.read_row_group(group, columns=[FOLD, PART, Y, *_weighted(cfg)])
            rows = table.filter(rows_mask(table, fold, valid, parts))
            if rows.num_rows:
                seqs.append(_GroupRows(st.train, group, rows.num_rows, (fold, valid, parts),
                                       features, matrix))
                labels.append(rows[Y].to_numpy())
                weights.append(rows[W].to_numpy() if cfg.data.weight else None)
        weight = np.concatenate(weights) if cfg.data.weight else None  # held, as the labels
        return lgb.Dataset(seqs, label=objective.batch_target(np.concatenate(labels)),
                           weight=weight, feature_name=names, categorical_feature=categorical,
                           reference=reference, free_raw_data=True)

    data = dataset(False)
    model.fit_datasets(data, dataset(True, data))
    del data
    out = save_booster(model, fold_dir, num, cat)
    return (lambda frame: booster_predict(model, matrix(frame), objective)), out


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
            rows = table.filter(rows_mask(table, fold, valid, parts))
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


def _write_preds(dest: Path, frames: Iterator[pd.DataFrame], predict, classes: list, *,
                 id_col: str, fold: int | None = None) -> None:
    """Predictions of `frames` written batch by batch: oof.parquet's columns with a fold
    (and each row's `weight` when `frames` hold W), test_pred.parquet's without."""
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
                    weight = frame[W].to_numpy() if W in frame.columns else None
                    out = oof_frame(frame[id_col].to_numpy(), fold, targets, pred, classes,
                                    weight)
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
