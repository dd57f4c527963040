"""XGBoost on a Dask cluster (train.dask_scheduler): one booster per fold trained with
xgboost.dask over the prepared parquet, which the workers read with dask.dataframe (with
data.weight, each row's weight read beside it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import Config
from kit.errors import ConfigError
from kit.out_of_core.prepared import FOLD, Streamed, W, Y
from kit.tasks.tabular.models import booster_frame, booster_predict, save_booster


def fit_xgb_dask(cfg: Config, model, st: Streamed, fold: int, fold_dir: Path, num, cat, objective, client):
    """xgboost.dask over the prepared parquet read by dask.dataframe: each partition becomes
    a booster frame and its labels on one worker; predictions are then made here, batch by
    batch."""
    import dask.dataframe as dd

    features, weighted = [*st.numeric, *st.categorical], [W] if cfg.data.weight else []
    frame = dd.read_parquet(str(st.train), columns=[*features, Y, *weighted, FOLD],
                            split_row_groups=True)

    def with_label(rows: pd.DataFrame) -> pd.DataFrame:
        out = booster_frame(rows, num, cat)
        out[Y] = objective.batch_target(rows[Y].to_numpy()).astype(np.float64)
        for column in weighted:  # data.weight: the rows' weights travel with them
            out[column] = rows[column].to_numpy(np.float64)
        return out

    meta = with_label(frame._meta)
    names = [c for c in meta.columns if c not in (Y, *weighted)]

    def part(valid: bool):
        rows = frame[(frame[FOLD] == fold) if valid else (frame[FOLD] != fold)]
        placed = spread(client, rows.map_partitions(with_label, meta=meta))
        # one partition each per placed partition: rows, labels and weights stay aligned
        return placed[names], placed[Y], placed[W] if weighted else None

    (train, y, w), (valid, y_valid, w_valid) = part(False), part(True)
    holding = model.fit_dask(client, train, y, valid, y_valid, weight=w, valid_weight=w_valid)
    out = save_booster(model, fold_dir, num, cat)
    out.info.update(dask_scheduler=str(client.scheduler.address), dask_workers=holding)
    return (lambda rows: booster_predict(model, booster_frame(rows, num, cat), objective)), out


def spread(client, frame):
    """`frame` computed partition by partition on the workers in turn (at least one
    partition each) and returned persisted, so xgboost.dask finds every worker holding
    rows. Left to the scheduler, partitions can all land on one worker (dask.dataframe
    marks its readers' tasks as data producers, placed anywhere), and XGBoost fails on a
    worker without rows when a column is categorical. Partitions are counted after
    dask's optimizer, which merges a parquet file's row groups when few columns are read."""
    workers = sorted(client.scheduler_info()["workers"])
    frame = frame.optimize()
    if frame.npartitions < len(workers):
        frame = frame.repartition(npartitions=len(workers)).optimize()
    futures = {part.key: client.compute(part, workers=[workers[i % len(workers)]])
               for i, part in enumerate(frame.to_delayed(optimize_graph=False))}
    rebuild, args = frame.__dask_postpersist__()
    return rebuild(futures, *args)


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
        client = Client(spec, timeout="30s")
    except OSError as exc:
        raise ConfigError(f"train.dask_scheduler = {spec!r}: no scheduler answered ({exc}); "
                          "start one (dask scheduler) and its workers, or use \"local:N\"") from None
    try:
        client.wait_for_workers(1, timeout=60)
    except TimeoutError:
        client.close()
        raise ConfigError(f"train.dask_scheduler = {spec!r}: the scheduler has no workers after "
                          f"60 s; start them with: dask worker {spec}") from None
    return client
