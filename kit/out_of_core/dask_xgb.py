"""XGBoost on a Dask cluster (train.dask_scheduler): one booster per fold trained with
xgboost.dask over the prepared parquet, which the workers read with dask.dataframe."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kit.config import Config
from kit.errors import ConfigError
from kit.out_of_core.prepared import FOLD, Streamed, Y
from kit.tasks.tabular import booster_frame, booster_predict, save_booster


def fit_xgb_dask(cfg: Config, model, st: Streamed, fold: int, fold_dir: Path, num, cat, objective, client):
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
