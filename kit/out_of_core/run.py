"""An out-of-core run end to end (package doc): when it is taken, what it refuses, the
folds, the run's OOF and test files, and the streamed submission."""

from __future__ import annotations

import json
import shutil
import time
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
from kit.io import atomic_path, write_json
from kit.metrics.competition import resolve_metric
from kit.models import get_entry
from kit.out_of_core.dask_xgb import dask_client
from kit.out_of_core.fit import fit_fold
from kit.out_of_core.metrics import MetricSums
from kit.out_of_core.prepared import BATCH_ROWS, pq_batches, prepare
from kit.run_folder import pred_columns, pred_frame, scores_dict, write_scores
from kit.runtime import distributed as dist
from kit.submission import form_for, sample_head, write_streamed_submission
from kit.training.track import make_tracker

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


def run(cfg: Config, opts, comp_dir: Path, why: str) -> dict:
    """pipeline.run_cv for a table larger than memory (package doc); `opts` a RunOptions,
    `why` what reason() said."""
    check_supported(cfg, comp_dir, why)
    started = time.monotonic()
    deadline = started + opts.max_time if opts.max_time else None
    metric = resolve_metric(cfg)
    sample_path = opts.data_dir / cfg.data.sample_submission
    head = sample_head(sample_path)
    key = cfg.cv.group or cfg.data.id
    print(f"out of core ({why}): streamed from parquet in batches of {BATCH_ROWS:,} rows; "
          f"folds by a hash of {key!r} (cv.strategy = \"hash\", not stratified)")
    st = prepare(cfg, comp_dir, opts.data_dir, opts.run_dir / "cache")
    print(f"fold balance ({int(st.fold_rows.sum()):,} rows):\n{st.balance.to_string()}")
    n_folds = min(opts.folds or cfg.cv.n_splits, cfg.cv.n_splits)
    for done in opts.run_dir.glob("fold*/done.json") if opts.resume else ():
        _check_version(done, st, opts.run_dir)
    tracker = make_tracker(cfg, opts.run_dir, main=True)
    if opts.on_start is not None:
        opts.on_start()
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
    with atomic_path(opts.run_dir / "test_pred.parquet") as test_tmp:
        batches = _mean_test(folds, st.classes, cfg.ensemble.fold_vote, test_tmp)
        if opts.submit:
            form = form_for(cfg, head, metric, classes=st.classes, source=sample_path)
            submission = write_streamed_submission(
                batches, st.classes, sample_path, head, opts.run_dir / "submission.csv",
                form)
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
        if not (opts.resume and done.exists()):
            if deadline is not None and time.monotonic() >= deadline:
                print(f"time budget reached before fold {k}; keeping {k} finished folds")
                break
            fold_dir.mkdir(parents=True, exist_ok=True)
            tracker.start_fold(k)
            info = fit_fold(st, cfg, k, fold_dir, opts.device, tracker, deadline, client)
            write_json(done, {**info, "prepared": st.version})
        score = _score(metric, [fold_dir / "oof.parquet"], st.classes)
        print(f"fold {k}: {metric.name} {score:.4f}")
        tracker.finish_fold({"fold": k, "score": score})
        if opts.on_fold is not None:
            opts.on_fold(k, score)
        fold_scores.append(score)
        infos.append(json.loads(done.read_text()))
    return fold_scores, infos


def _check_version(done: Path, st, run_dir: Path) -> None:
    """A finished fold trained on the prepared table as it is now, or the resume stops."""
    trained = json.loads(done.read_text()).get("prepared", "(not recorded)")
    if trained != st.version:
        raise DataError(f"{done}: the fold trained on prepared table {trained}, the sources "
                        f"now give {st.version} (a source file, features.py or the config "
                        f"changed since the run began); start a new run instead of "
                        f"--resume {run_dir}")


def _score(metric, files: list[Path], classes: list) -> float:
    """The metric over prediction files, summed batch by batch (kit/out_of_core/metrics.py)."""
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
    from kit.ensembles.blend import fold_vote_hard

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
