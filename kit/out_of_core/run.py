"""The out-of-core run path (package doc): when it is taken, what it refuses, and its way
through kit/pipeline/loop.py's run loop (OutOfCore): the prepared table, the folds, the
run's OOF and test files and the submission, as streams."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kit.config import Config
from kit.data.sources import source_files
from kit.errors import ConfigError, DataError
from kit.hooks import load_hook
from kit.io import atomic_path
from kit.metrics.competition import resolve_metric
from kit.models import get_entry
from kit.out_of_core.dask_xgb import dask_client
from kit.out_of_core.fit import fit_fold
from kit.out_of_core.metrics import MetricSums
from kit.out_of_core.prepared import BATCH_ROWS, pq_batches, prepare
from kit.out_of_core.submission import sample_head, write_streamed_submission
from kit.run_folder import (
    DONE,
    fold_dir,
    fold_dirs,
    pred_columns,
    pred_frame,
    prediction_files,
    read_done,
    write_done,
)
from kit.runtime import distributed as dist
from kit.submission import target_sample
from kit.tasks import FoldContext, FoldOutput, RunScores

STREAMING_KINDS = ("mlp", "tabm", "xgb", "lgbm")
WHOLE_TABLE_HOOKS = ("build", "fold_features", "keep_train_rows", "extra_train_rows")


def reason(cfg: Config, data_dir: Path) -> str:
    """Why this run streams end to end (package doc), or "" when it does not."""
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


# the metrics kit/out_of_core/metrics.py sums batch by batch (a competition's metric.py, map@k, qwk
# and the other newer built-ins are scored on whole arrays)
SUMMED_METRICS = ("accuracy", "auc", "f1_macro", "logloss", "mae", "r2", "rmse", "rmsle")


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
        ("features.text", cfg.features.text not in ((), ("auto",))),  # TF-IDF fits in memory
        ("features.scaling = \"quantile\"", cfg.features.scaling == "quantile"),
        (f"cv.repeats = {cfg.cv.repeats}", cfg.cv.repeats > 1),
        ("cv.strategy = \"time\"", cfg.cv.strategy == "time")) if used]
    if needs:
        raise ConfigError(f"{why}, and {', '.join(needs)} need(s) the whole table in memory; "
                          "move row-local features to features.py transform_batch(frame), drop "
                          "the others, or set data.out_of_core = \"off\" if the table fits")
    metric = resolve_metric(cfg).name
    if metric not in SUMMED_METRICS:
        raise ConfigError(f"competition.metric = {metric!r} needs every OOF row at once: {why},"
                          " whose scores are summed batch by batch (kit/out_of_core/metrics.py: "
                          f"{', '.join(SUMMED_METRICS)}); set data.out_of_core = \"off\" if "
                          "the table fits")
    if dist.info().world_size > 1:
        raise ConfigError(f"{why}: it runs in one process; drop torchrun, or use "
                          "train.dask_scheduler with xgb")


class OutOfCore:
    """The run path of a table larger than memory (package doc), through
    kit/pipeline/loop.py's run loop; `why` is what reason() said, check_supported passed."""

    def __init__(self, cfg: Config, metric, why: str, comp_dir: Path, *, data_dir: Path,
                 run_dir: Path, resume: bool):
        self.cfg, self.metric = cfg, metric
        self.sample_path = data_dir / cfg.data.sample_submission
        # the rest is read chunk by chunk; one target's run of several: its id and column
        self.sample = target_sample(sample_head(self.sample_path), cfg)
        key = cfg.cv.group or cfg.data.id
        print(f"out of core ({why}): streamed from parquet in batches of {BATCH_ROWS:,} rows; "
              f"folds by a hash of {key!r} (cv.strategy = \"hash\", not stratified)")
        self.st = prepare(cfg, comp_dir, data_dir, run_dir / "cache")
        print(f"fold balance ({int(self.st.fold_rows.sum()):,} rows):\n"
              f"{self.st.balance.to_string()}")
        for fold in fold_dirs(run_dir) if resume else ():
            _check_version(fold, self.st, run_dir)
        self.classes, self.n_fits = self.st.classes, cfg.cv.n_splits
        self.split = f"hash:{key}:{cfg.cv.n_splits}:{cfg.cv.seed}"
        self.client = None  # a Dask client while the folds train (train.dask_scheduler)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """A Dask client (train.dask_scheduler) held while the folds train."""
        scheduler = self.cfg.train.dask_scheduler
        self.client = dask_client(scheduler) if scheduler else None
        try:
            yield
        finally:
            if self.client is not None:
                cluster = self.client.cluster
                self.client.close()
                if cluster is not None:
                    cluster.close()
            self.client = None

    def fold_rows(self, k: int) -> tuple[None, None]:
        return None, None  # a fold scans the prepared table by its `_fold`

    def finished(self, k: int, fold: Path) -> FoldOutput | None:
        info = read_done(fold)
        return None if info is None else FoldOutput(None, None, info)

    def fit_fold(self, ctx: FoldContext) -> FoldOutput:
        """The fold's files written batch by batch, then done.json naming the prepared table."""
        out = fit_fold(self.st, ctx, self.client)
        out.info = {**out.info, "prepared": self.st.version}
        write_done(ctx.fold_dir, out.info)
        return out

    def score_fold(self, k: int, fold: Path) -> float:
        return _score(self.metric, prediction_files([fold], "oof"), self.classes,
                      bool(self.cfg.data.weight))

    def plot_fold(self, k: int, fold: Path, out: FoldOutput) -> None:
        """Nothing: the plots need every OOF row in memory."""

    def finish(self, run_dir: Path, fold_scores: list[float]) -> RunScores:
        """The run's oof.parquet (the folds' one after the other) and test_pred.parquet
        (their mean, or vote), both as streams; under data.weight every score weighs the
        rows by oof.parquet's `weight`, as the in-memory path's."""
        folds = [fold_dir(run_dir, k) for k in range(len(fold_scores))]
        oof = prediction_files([run_dir], "oof")
        _concat(prediction_files(folds, "oof"), oof[0])
        _mean_test(prediction_files(folds, "test"), self.classes, self.cfg.train.fold_vote,
                   prediction_files([run_dir], "test")[0])
        weight = self.cfg.data.weight
        extra = {"out_of_core": True, **({"weight": weight} if weight else {})}
        return RunScores(fold_scores, _score(self.metric, oof, self.classes, bool(weight)), [],
                         self.split, extra)

    def report(self, run_dir: Path, scores: RunScores, folds: list[FoldOutput]) -> None:
        """Nothing: no plot or run importance out of core."""

    def submit(self, dest: Path, form) -> Path:
        """submission.csv streamed from the run's test_pred.parquet, checked against the
        sample chunk by chunk."""
        return write_streamed_submission(self._test_batches(dest.parent), self.classes,
                                         self.sample_path, self.sample, dest, form)

    def _test_batches(self, run_dir: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cols = pred_columns(self.classes)
        for batch in pq_batches(prediction_files([run_dir], "test"), ["id", *cols]):
            yield (batch.column(0).to_numpy(zero_copy_only=False),
                   np.column_stack([batch.column(c).to_numpy() for c in cols]))


def _check_version(fold: Path, st, run_dir: Path) -> None:
    """A finished fold trained on the prepared table as it is now, or the resume stops."""
    trained = read_done(fold).get("prepared", "(not recorded)")
    if trained != st.version:
        raise DataError(f"{fold / DONE}: the fold trained on prepared table {trained}, the sources "
                        f"now give {st.version} (a source file, features.py or the config "
                        f"changed since the run began); start a new run instead of "
                        f"--resume {run_dir}")


def _score(metric, files: list[Path], classes: list, weighted: bool = False) -> float:
    """The metric over prediction files, summed batch by batch (kit/out_of_core/metrics.py);
    `weighted`: each row weighed by the files' `weight` column (data.weight)."""
    cols = pred_columns(classes)
    sums = MetricSums(metric, len(classes))
    for batch in pq_batches(files, ["target", *(["weight"] if weighted else []), *cols]):
        target = batch.column("target").to_pandas()
        y = pd.Index(classes).get_indexer(target) if classes else target.to_numpy(np.float64)
        sums.add(y, np.column_stack([batch.column(c).to_numpy() for c in cols]),
                 batch.column("weight").to_numpy() if weighted else None)
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


def _mean_test(files: list[Path], classes: list, vote: str, dest: Path) -> None:
    """The folds' mean test prediction (or their hard vote) written to `dest` batch by
    batch; the folds' test_pred files share one row order."""
    from kit.ensembles.blend import fold_vote_hard

    cols = pred_columns(classes)
    readers = [pq_batches([f]) for f in files]
    writer = None
    with atomic_path(dest) as tmp:
        try:
            for parts in zip(*readers, strict=True):
                frames = [p.to_pandas() for p in parts]
                preds = [f[cols].to_numpy() for f in frames]
                mean = fold_vote_hard(preds) if vote == "hard" else np.mean(preds, axis=0)
                table = pa.Table.from_pandas(pred_frame(frames[0]["id"].to_numpy(), mean,
                                                        classes), preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
