"""One network for several targets: trained once per fold, read by every column's run.

A run with several targets trains one run per column (kit/pipeline/targets.py). With a
network kind (mlp, tabm) and model.multi_output, the columns' runs share one network per
fold fit: each column's config.toml holds model.joint_targets (every target, in output
order), and the first column to reach a fold trains the network with an output per target
on the (N, T) label matrix, early-stopped on the mean over the targets of the run's metric,
in `<run>/network/<fold>/` (its checkpoints, history.csv, and joint.npz: its validation
and test predictions for every target, written last); a later column's fold reads its own
output from there instead of training. A refit on all rows does the same in
`<run>/network/refit/seed<i>/`. Each column's fold folder keeps its own preprocessors and
done.json, so scores, OOF files, ensembles and predict.py see ordinary column runs;
predict.py loads the network from the run's network/ folder (copy the run folder whole).

    out = shared_fit(cfg, ctx, train)  # train(ctx) -> FoldOutput of (N, T) predictions
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.errors import CheckpointError, DataError
from kit.io import atomic_path, write_json
from kit.metrics.registry import Metric
from kit.run_folder import TARGETS, read_history
from kit.runtime import distributed as dist
from kit.tasks import FoldContext, FoldOutput

NETWORK = "network"  # <run>/network/: the shared network's fold and refit folders
SAVED = "joint.npz"  # a finished network's predictions: valid (rows, T), test (rows, T)


@dataclass(frozen=True)
class Joint:
    """Where a column's fold finds the network it shares, and which output is its own."""

    folder: Path  # <run>/network/<the fold folder's path inside the column's run>
    column: int  # this column's output
    targets: tuple[str, ...]  # every target, in output order
    regression: bool


def joint_for(cfg, fold_dir: Path) -> Joint | None:
    """The shared network of a column's fold folder, or None (a network of its own)."""
    targets = tuple(cfg.model.joint_targets)
    if not targets:
        return None
    fold_dir = Path(fold_dir)
    column_dir = next((p for p in fold_dir.parents if p.parent.name == TARGETS), None)
    if column_dir is None:
        raise CheckpointError(f"{fold_dir}: model.joint_targets = {list(targets)} names a "
                              "network shared by several targets' runs, kept in the run's "
                              f"{NETWORK}/ folder; this fold is not under <run>/{TARGETS}/"
                              "<column>/: copy the run folder whole")
    return Joint(column_dir.parent.parent / NETWORK / fold_dir.relative_to(column_dir),
                 targets.index(cfg.data.target), targets,
                 cfg.competition.problem == "regression")


def joint_labels(cfg, strata: np.ndarray | None, source: str) -> np.ndarray:
    """The (N, T) labels one network learns: every target per train row (cv.stratify_on's
    columns, which a column's config sets to the targets): 0 / 1 class codes, or values."""
    targets = list(cfg.model.joint_targets)
    if strata is None or list(cfg.cv.stratify_on) != targets:
        raise DataError(f"model.joint_targets = {targets} needs cv.stratify_on = the same "
                        "columns (the kit writes both into a column's config.toml); train "
                        "the run again from the competition's config")
    labels = strata.reshape(len(strata), -1)
    if cfg.competition.problem == "classification":
        wide = [t for j, t in enumerate(targets) if labels[:, j].max() > 1]
        if wide:
            raise DataError(f"{source}: target(s) {wide} have more than two classes; one "
                            "network's outputs are binary columns (a sigmoid each) or numbers: "
                            "set model.multi_output = false (a network per column)")
        return labels.astype(np.int64)
    return labels.astype(np.float64)


def joint_metric(metric: Metric, joint: Joint) -> Metric:
    """The run's metric over (N, T) labels and predictions: the mean over the targets of
    each column's score (what the shared network early-stops on)."""

    def mean_over_columns(labels, pred, weight=None):
        return float(np.mean([metric(labels[:, j], column_pred(pred, j, joint.regression),
                                     weight) for j in range(len(joint.targets))]))

    return _Columns(metric.name, metric.fn, metric.mode, metric.scores, metric.k,
                    metric.source, metric.weighted, mean_over_columns)


@dataclass(frozen=True)
class _Columns(Metric):
    over_columns: Callable | None = None

    def __call__(self, labels, proba, weight=None) -> float:
        return self.over_columns(np.asarray(labels), np.asarray(proba), weight)


def column_pred(pred: np.ndarray, j: int, regression: bool) -> np.ndarray:
    """Output `j` of (N, T) predictions as one column's run holds it: (N, 1) values, or
    (N, 2) probabilities of classes 0 and 1."""
    if regression:
        return pred[:, j:j + 1]
    return np.column_stack([1.0 - pred[:, j], pred[:, j]])


def shared_fit(cfg, ctx: FoldContext, train: Callable[[FoldContext], FoldOutput]) -> FoldOutput:
    """`train(ctx)` for a network of its own; for a column of a shared network, its output
    of the network `train` fitted in the network's folder, or read from there when an
    earlier column's fold trained it with the same settings."""
    joint = joint_for(cfg, ctx.fold_dir)
    if joint is None:
        return train(ctx)
    key, name = _key(cfg, ctx), f"refit {ctx.fold_dir.name}" if ctx.refit else f"fold {ctx.fold}"
    out = _read(joint, key)
    if out is None:
        joint.folder.mkdir(parents=True, exist_ok=True)
        if dist.is_main():
            print(f"{name}: one network for {len(joint.targets)} targets in {joint.folder} "
                  f"(its {ctx.metric.name}: the mean over the targets)")
        out = train(dataclasses.replace(ctx, fold_dir=joint.folder,
                                        metric=joint_metric(ctx.metric, joint)))
        if dist.is_main():  # under torchrun every rank holds the same gathered predictions
            _save(joint, key, out)
        dist.barrier()
    elif dist.is_main():
        print(f"{name}: {joint.targets[joint.column]!r} "
              f"takes its output of the network in {joint.folder}")
    return FoldOutput(None if out.valid_pred is None else
                      column_pred(out.valid_pred, joint.column, joint.regression),
                      column_pred(out.test_pred, joint.column, joint.regression),
                      {**out.info, "network": str(joint.folder)}, history=out.history,
                      sample_batch=out.sample_batch)  # an image network's, where it trained


def network_folder(cfg, fold_dir: Path) -> Path:
    """The folder a fold's network checkpoint lies in: its own, or the shared network's."""
    joint = joint_for(cfg, fold_dir)
    return Path(fold_dir) if joint is None else joint.folder


def _key(cfg, ctx: FoldContext) -> dict:
    """What makes a fold's network: the same key, the same network (a refit's length and
    seed change it; the columns' configs differ only in data.target)."""
    return {"fold": ctx.fold, "refit": ctx.refit, "epochs": cfg.train.epochs,
            "seed": cfg.train.seed, "train_rows": len(ctx.train_idx),
            "valid_rows": 0 if ctx.valid_idx is None else len(ctx.valid_idx)}


def _save(joint: Joint, key: dict, out: FoldOutput) -> None:
    with atomic_path(joint.folder / SAVED) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, test=out.test_pred,
                 **({} if out.valid_pred is None else {"valid": out.valid_pred}))
    write_json(joint.folder / "joint.json", {"key": key, "info": out.info,
                                             "targets": list(joint.targets)})


def _read(joint: Joint, key: dict) -> FoldOutput | None:
    record, saved = joint.folder / "joint.json", joint.folder / SAVED
    if not (record.is_file() and saved.is_file()):
        return None
    meta = json.loads(record.read_text(encoding="utf-8"))
    if meta.get("key") != key or meta.get("targets") != list(joint.targets):
        return None  # another length or seed (a resumed refit): trained again
    with np.load(saved, allow_pickle=False) as data:
        valid = data["valid"] if "valid" in data.files else None
        test = data["test"]
    return FoldOutput(valid, test, meta["info"], history=read_history(joint.folder) or [])
