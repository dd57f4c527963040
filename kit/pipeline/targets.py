"""A run with several targets (data.target = ["a", "b", ...]): one run per column, all on
one split, then the run's scores and one submission column per target.

Each column's run is an ordinary run in `<run>/targets/<column>/` (kit.run_folder
`target_dirs`): its config.toml says data.target = the column and cv.stratify_on = every
target, so every column's run makes (or reads) the same stored split, stratified on all of
them at once (kit/splits/folds.py `multilabel_folds`). It keeps its own folds, OOF, test
predictions, scores, refit and a submission.csv checked against the sample's id and its
column; predict.py, --resume and ensemble.py take the columns one by one. The run folder
itself holds config.toml (the list), run.json, scores.json (the mean over the columns of
each column's score, and each column's under "targets") and submission.csv (every column, in
the sample's order).

One model per column: every kind trains on several targets this way, and fold-safe target
features (features.target_encode) encode each column's run with its own target. A network
kind (mlp, tabm) with model.multi_output (the default) instead trains one network per fold
with an output per target, shared by the columns' runs (kit/tasks/joint.py), unless the
columns' inputs differ (target_encode, a fold_features, keep_train_rows or
extra_train_rows hook: each column's rows or features are its own) or the table streams out
of core: the run prints which it chose. An image task with several label columns goes the
same way (one CNN per fold with a sigmoid per label, kit/tasks/image.py). Out of core, each
column's run streams the table itself (hashed folds on the id: the same for every column).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kit import out_of_core
from kit.config import Config
from kit.errors import ConfigError
from kit.hooks import load_hook
from kit.models import get_entry
from kit.paths import competition_dir
from kit.run_folder import (
    SUBMISSION,
    combined_scores,
    is_run_folder,
    merge_submissions,
    read_config,
    read_run_info,
    read_scores,
    submission_copy,
    target_dirs,
    write_config,
    write_run_info,
    write_scores,
)
from kit.runtime import distributed as dist
from kit.submission import check_target_columns, read_sample


def several(cfg: Config) -> bool:
    """Whether the run predicts several target columns."""
    return len(cfg.data.targets) > 1


def column_config(cfg: Config, column: str, *, joint: bool = False) -> Config:
    """The config of one target's run: data.target = `column`, the split on every target;
    with `joint`, the network it shares with the other columns (model.joint_targets)."""
    data = dataclasses.replace(cfg.data, target=column)
    cv = dataclasses.replace(cfg.cv, stratify_on=cfg.data.targets)
    model = dataclasses.replace(cfg.model, joint_targets=cfg.data.targets if joint else ())
    return cfg.replace(data=data, cv=cv, model=model)


def per_column_reason(cfg: Config, data_dir: Path) -> str | None:
    """None when one network with an output per target trains the run (a network kind, or
    any image model, and model.multi_output); else why each column trains its own model."""
    if cfg.competition.task == "image":  # every image model is a network; no feature hooks
        return None if cfg.model.multi_output else "model.multi_output = false"
    if get_entry(cfg.model.name, "tabular").kind != "torch":
        return f"model.name = {cfg.model.name!r} trains a model per column"
    if not cfg.model.multi_output:
        return "model.multi_output = false"
    if cfg.features.target_encode:
        return "features.target_encode encodes each column's run with its own target"
    streams = out_of_core.reason(column_config(cfg, cfg.data.targets[0]), data_dir)
    if streams:  # a streamed column's rows are read by its own run
        return f"out of core ({streams}): a network per column"
    hooks = [name for name in ("fold_features", "keep_train_rows", "extra_train_rows")
             if (name != "fold_features" or cfg.features.fold_hook)
             and load_hook(competition_dir(cfg.competition.slug), "features", name)]
    if hooks:
        return f"features.py's {' and '.join(hooks)} may differ per target"
    return None


def check_several(cfg: Config, data_dir: Path) -> pd.DataFrame:
    """Refuse what a run with several targets cannot do yet, before any folder is made;
    the sample submission, checked to hold an id and the targets. Tabular and image tasks
    both train them (an image's MixUp / CutMix mix class indices: refused)."""
    if cfg.competition.task == "image" and (cfg.image.mixup or cfg.image.cutmix):
        raise ConfigError(f"image.mixup = {cfg.image.mixup:g}, image.cutmix = "
                          f"{cfg.image.cutmix:g} with data.target = {list(cfg.data.targets)}: "
                          "MixUp and CutMix mix one class per image, not several labels; set "
                          "both to 0")
    if cfg.cv.stratify_on:
        raise ConfigError(f"cv.stratify_on = {list(cfg.cv.stratify_on)} with data.target = "
                          f"{list(cfg.data.targets)}: the kit stratifies on every target itself; "
                          "unset cv.stratify_on")
    if cfg.cv.strategy == "stratified_group":
        raise ConfigError(f"cv.strategy = \"stratified_group\" stratifies on one column; with "
                          f"data.target = {list(cfg.data.targets)} use cv.strategy = \"group\" "
                          "(groups kept whole, not stratified)")
    path = data_dir / cfg.data.sample_submission
    sample = read_sample(path)
    check_target_columns(sample, cfg.data.targets, str(path))
    return sample


def run_targets(cfg: Config, opts, run_one: Callable) -> dict:
    """Train each target column's run (`run_one`: kit.pipeline.run_cv) on the one split,
    then write the run's scores.json and submission.csv; returns run_cv's summary with
    each column's under "targets"."""
    started = time.monotonic()
    sample = check_several(cfg, opts.data_dir)
    folders = target_dirs(opts.run_dir, cfg.data.targets)
    why = _stored_choice(folders) if opts.resume else None
    why = why if why is not None else per_column_reason(cfg, opts.data_dir)
    print(f"several targets: one network with {len(folders)} outputs, trained by the first "
          "column's folds (kit/tasks/joint.py)" if not why else
          f"several targets: a model per column ({why})")
    summaries = {}
    for j, (column, folder) in enumerate(folders.items()):
        print(f"target {j + 1} of {len(folders)}: {column!r} -> {folder}")
        # a shared network trains in the first column's folds: it gets the time left whole
        left = 1 if not why else len(folders) - j
        sub = _column_options(opts, folder, started, left, first=j == 0)
        column_cfg = column_config(cfg, column, joint=not why)
        _start_column(column_cfg, opts, folder)
        summaries[column] = run_one(column_cfg, sub)
    if not dist.is_main():  # rank 0 writes the run's files (each column's too); the others are done
        return {"run_dir": str(opts.run_dir), "rank": dist.info().rank}
    scores = combined_scores({c: read_scores(f) for c, f in folders.items()},
                             n_splits=cfg.cv.n_splits, repeats=cfg.cv.repeats,
                             seconds=time.monotonic() - started)
    write_scores(opts.run_dir, scores)
    copy = None
    if opts.submit:
        merge_submissions(sample, folders, opts.run_dir / SUBMISSION)
        copy = submission_copy(opts.run_dir, opts.submissions_dir, cfg.competition.slug,
                               opts.label)
    _print_summary(scores, copy)
    return {"run_dir": str(opts.run_dir), "submission": copy and str(copy),
            "run_submission": str(opts.run_dir / SUBMISSION) if opts.submit else None,
            "cv": {k: scores[k] for k in ("metric", "mean", "std", "fold_scores", "oof")} |
            {"repeat_means": []}, "refit": _refits(summaries), "seconds": scores["seconds"],
            "targets": summaries}


def _stored_choice(folders: dict[str, Path]) -> str | None:
    """A resumed run keeps the choice its first start wrote into the columns' config.toml:
    "" (one shared network), a reason (a model per column), None (no column started yet)."""
    for folder in folders.values():
        if is_run_folder(folder):
            shared = read_config(folder).model.joint_targets
            return "" if shared else "as the run began: its columns' config.toml"
    return None


def _refits(summaries: dict[str, dict]) -> dict | None:
    """The columns' refit models together (their "fits", what the portfolio times); None
    when no column refitted."""
    fits = [fit for s in summaries.values() for fit in (s.get("refit") or {}).get("fits", [])]
    return {"fits": fits} if fits else None


def _column_options(opts, folder: Path, started: float, left: int, *, first: bool):
    """One column's RunOptions: its folder, the competition's stored splits, no copy under
    submissions/ (the run's own submission is the one), its share of --max-time."""
    max_time = None
    if opts.max_time:
        max_time = max(opts.max_time - (time.monotonic() - started), 0.0) / left
    return dataclasses.replace(
        opts, run_dir=folder, resume=opts.resume and is_run_folder(folder), max_time=max_time,
        comp_runs=opts.comp_runs or opts.run_dir.parent, copy_submission=False,
        on_start=opts.on_start if first else None,
        on_fold=None)  # a tuning trial is not pruned by one column's folds


def _start_column(cfg: Config, opts, folder: Path) -> None:
    """A column's folder, its config.toml and the run's run.json (what predict.py reads),
    unless a resume finds them there."""
    if opts.resume and is_run_folder(folder):
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder, cfg)
    write_run_info(folder, read_run_info(opts.run_dir))


def _print_summary(scores: dict, copy: Path | None) -> None:
    for column, s in scores["targets"].items():
        print(f"  {column}: CV {scores['metric']} {s['mean']:.4f} ± {s['std']:.4f} "
              f"(OOF {s['oof']:.4f})")
    rows = scores.get("oof_rows"), scores.get("rows")
    covered = "" if rows[0] in (None, rows[1]) else f" on {rows[0]} of {rows[1]} rows"
    print(f"CV {scores['metric']} (mean over {len(scores['targets'])} targets): "
          f"{scores['mean']:.4f} ± {scores['std']:.4f} over {scores['n_folds_trained']} folds "
          f"(OOF {scores['oof']:.4f}{covered}) in {scores['seconds']:.1f}s")
    if copy is not None:
        print(f"submission: {copy}")
