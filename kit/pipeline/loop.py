"""run_cv: the one run loop, for a table held in memory and one streamed out of core.

The loop owns what every run does alike: resume (a fold whose done.json exists is read,
not trained), the deadline (--max-time: no fold starts after it), tracking, the fold
lines and the run's scores.json, the submission and its copy under submissions/<slug>/,
the refit on all rows (kit/pipeline/refit.py, train.refit), and the printed summary. What
differs by table size is a RunPath:
kit/pipeline/in_memory.py (InMemory) or kit/out_of_core/run.py (OutOfCore).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from kit import out_of_core
from kit.config import Config
from kit.errors import DataError
from kit.metrics.competition import resolve_metric
from kit.metrics.registry import Metric
from kit.paths import competition_dir
from kit.pipeline import targets
from kit.pipeline.in_memory import InMemory
from kit.pipeline.refit import check_refit, refit_run
from kit.run_folder import SUBMISSION, fold_dir, scores_dict, submission_copy, write_scores
from kit.runtime import distributed as dist
from kit.submission import SubmissionForm, form_for
from kit.tasks import FoldContext, FoldOutput, RunScores
from kit.training.track import make_tracker


@dataclass
class RunOptions:
    data_dir: Path
    run_dir: Path
    submissions_dir: Path
    device: object  # torch.device
    first_fits: int | None = None  # train only the first K fold fits (--fits K)
    resume: bool = False
    max_time: float | None = None  # seconds for the whole run
    label: str = ""  # "dryrun" / "demo": marks the submission file name
    submit: bool = True  # false: no submission files (a tuning trial's CV run)
    on_fold: Callable[[int, float], None] | None = None  # (fold, score) after each fold
    on_start: Callable[[], None] | None = None  # inputs and split checked, before fold 0
    comp_runs: Path | None = None  # where the competition's splits live (default: run_dir's parent)
    copy_submission: bool = True  # false: the submission stays in the run folder (one target's)


class RunPath(Protocol):
    """A table size's way through the run loop. Made before fold 0 (inputs read and
    checked, the split made); then, fold by fold, a finished fold is read or a new one
    fitted (its files written, done.json last) and scored; then the run's files."""

    n_fits: int  # fold fits planned (cv.repeats x cv.n_splits)
    classes: list  # index -> label; empty for a regression
    sample: pd.DataFrame  # the sample submission as held (whole, or its head out of core)
    sample_path: Path

    def session(self) -> AbstractContextManager: ...  # held while the folds train

    def fold_rows(self, k: int) -> tuple[np.ndarray | None, np.ndarray | None]: ...

    def finished(self, k: int, fold: Path) -> FoldOutput | None: ...

    def fit_fold(self, ctx: FoldContext) -> FoldOutput: ...

    def score_fold(self, k: int, fold: Path) -> float: ...

    def plot_fold(self, k: int, fold: Path, out: FoldOutput) -> None: ...

    def finish(self, run_dir: Path, fold_scores: list[float]) -> RunScores: ...

    def report(self, run_dir: Path, scores: RunScores, folds: list[FoldOutput]) -> None: ...

    def submit(self, dest: Path, form: SubmissionForm) -> Path: ...


@dataclass
class _Folds:
    """The finished folds, in fold order: their scores and what each handed back."""

    scores: list[float] = field(default_factory=list)
    outputs: list[FoldOutput] = field(default_factory=list)


def run_cv(cfg: Config, opts: RunOptions) -> dict:
    """Train every fold (or the first `opts.first_fits`), write predictions, scores, submission;
    a run with several targets trains one such run per column (kit/pipeline/targets.py)."""
    if targets.several(cfg):
        return targets.run_targets(cfg, opts, run_cv)
    started = time.monotonic()
    deadline = started + opts.max_time if opts.max_time is not None else None
    path, metric = _run_path(cfg, opts)
    main = dist.is_main()
    tracker = make_tracker(cfg, opts.run_dir, main=main)
    if main and opts.on_start is not None:
        opts.on_start()
    with path.session():
        folds = _fit_folds(path, cfg, opts, metric, tracker, deadline)
    if not folds.scores:
        raise DataError("no fold finished (time budget too small?); nothing to submit")
    if not main:  # rank 0 writes the run's files; the others are done
        return {"run_dir": str(opts.run_dir), "rank": dist.info().rank}
    summary = _finish(path, cfg, opts, metric, folds, started, deadline)
    tracker.finish_cv(summary["cv"])
    return summary


def _run_path(cfg: Config, opts: RunOptions) -> tuple[RunPath, Metric]:
    """The path for this table (out of core when kit.out_of_core.reason says so, refused
    there before anything is read) and the run's metric."""
    comp_dir = competition_dir(cfg.competition.slug)
    check_refit(cfg, opts.data_dir)
    why = out_of_core.reason(cfg, opts.data_dir)
    if why:
        out_of_core.check_supported(cfg, comp_dir, why)
    metric = resolve_metric(cfg)  # a built-in, or the competition's metric.py
    where = {"data_dir": opts.data_dir, "run_dir": opts.run_dir, "resume": opts.resume}
    if why:  # a table larger than memory: streamed throughout
        return out_of_core.OutOfCore(cfg, metric, why, comp_dir, **where), metric
    comp_runs = opts.comp_runs or opts.run_dir.parent
    return InMemory(cfg, metric, comp_dir, comp_runs=comp_runs, **where), metric


def _fit_folds(path: RunPath, cfg: Config, opts: RunOptions, metric: Metric, tracker,
               deadline: float | None) -> _Folds:
    """Each fold fit in order: read when finished (--resume), else trained unless the
    deadline passed; scored, printed, reported to the tracker and `opts.on_fold`."""
    folds = _Folds()
    for k in range(min(opts.first_fits or path.n_fits, path.n_fits)):
        fold = fold_dir(opts.run_dir, k)
        out = path.finished(k, fold) if opts.resume else None  # a new run trains every fold
        if out is None:
            if deadline is not None and time.monotonic() >= deadline:
                print(f"time budget reached before fold {k}; keeping {k} finished folds")
                break
            fold.mkdir(parents=True, exist_ok=True)
            ctx = FoldContext(cfg, k, *path.fold_rows(k), fold, opts.device, metric,
                              deadline=deadline, tracker=tracker, resume=opts.resume)
            tracker.start_fold(k)
            out = path.fit_fold(ctx)
        score = path.score_fold(k, fold)
        if dist.is_main():
            path.plot_fold(k, fold, out)
            repeat = f" (repeat {k // cfg.cv.n_splits})" if cfg.cv.repeats > 1 else ""
            reason = f"  ({out.info['stop_reason']})" if out.info.get("stop_reason") else ""
            print(f"fold {k}{repeat}: {metric.name} {score:.4f}{reason}")
        tracker.finish_fold({"fold": k, "score": score})
        if opts.on_fold is not None:  # a tuning trial reports, and may be pruned here
            opts.on_fold(k, score)
        folds.scores.append(score)
        folds.outputs.append(out)
    return folds


def _finish(path: RunPath, cfg: Config, opts: RunOptions, metric: Metric, folds: _Folds,
            started: float, deadline: float | None) -> dict:
    """The run's predictions and scores.json, the refit on all rows (train.refit), the
    path's report, the submission and its copy, the printed summary; returns the summary
    (--summary-json)."""
    run = path.finish(opts.run_dir, folds.scores)
    scores = scores_dict(metric, cfg.competition.problem, run.fold_scores, run.oof, path.classes,
                         n_folds_trained=len(run.fold_scores), n_splits=cfg.cv.n_splits,
                         repeats=cfg.cv.repeats, repeat_means=run.repeat_means,
                         split=run.split, fold_info=[out.info for out in folds.outputs],
                         **run.fields)
    scores["seconds"] = time.monotonic() - started  # training and predictions, not the plots
    if run.oof_rows is not None:  # a time split's first block (and --fits K) is not in it
        scores["oof_rows"], scores["rows"] = run.oof_rows, run.rows
    if opts.submit and cfg.train.refit != "off":  # a tuning trial scores the folds only
        scores["refit"] = refit_run(path, cfg, opts, [out.info for out in folds.outputs],
                                    deadline)
    write_scores(opts.run_dir, scores)
    path.report(opts.run_dir, run, folds.outputs)
    submission = copy = None
    if opts.submit:
        form = form_for(cfg, path.sample, metric, classes=path.classes, source=path.sample_path)
        submission = path.submit(opts.run_dir / SUBMISSION, form)
        if opts.copy_submission:
            copy = submission_copy(opts.run_dir, opts.submissions_dir, cfg.competition.slug,
                                   opts.label)
    seconds = time.monotonic() - started
    _print_summary(metric, scores, run, seconds, copy)
    return {"run_dir": str(opts.run_dir), "submission": copy and str(copy),
            "run_submission": submission and str(submission),
            "cv": {"metric": metric.name, "mean": scores["mean"], "std": scores["std"],
                   "fold_scores": scores["fold_scores"], "oof": scores["oof"],
                   "repeat_means": run.repeat_means},
            "refit": scores.get("refit"), "seconds": seconds}


def _print_summary(metric: Metric, scores: dict, run: RunScores, seconds: float,
                   copy: Path | None) -> None:
    covered = "" if run.oof_rows in (None, run.rows) else f" on {run.oof_rows} of {run.rows} rows"
    print(f"CV {metric.name}: {scores['mean']:.4f} ± {scores['std']:.4f} over "
          f"{len(run.fold_scores)} folds (OOF {run.oof:.4f}{covered}) in {seconds:.1f}s")
    if len(run.repeat_means) > 1:
        print(f"  over {len(run.repeat_means)} repeats: {np.mean(run.repeat_means):.4f} ± "
              f"{np.std(run.repeat_means):.4f} (the std of the repeat means)")
    if scores.get("refit", {}).get("test_pred"):
        print(f"  (the CV is the folds'; the submission is the refit's "
              f"({scores['refit']['mode']}), which has no OOF score)")
    if copy is not None:
        print(f"submission: {copy}")
