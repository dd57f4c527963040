"""The in-memory run path: a table or an image set held in memory (kit/pipeline/loop.py
asks it for the folds). The task adapter (kit/tasks/<task>.py) prepares the data and fits
each fold; here the split is made (folds.csv), each fold's OOF and test predictions are
kept in memory and written to its folder, the OOF is averaged over repeats and scored
(cut points under qwk), and the run's plots, importance and submission are made.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import Config
from kit.ensembles.blend import fold_vote_hard
from kit.errors import DataError
from kit.io import write_csv
from kit.metrics import cut_points
from kit.metrics.registry import Metric
from kit.run_folder import (
    oof_frame,
    pred_columns,
    pred_frame,
    read_fold,
    read_fold_importance,
    read_folds,
    read_history,
    read_split_key,
    shared_split,
    write_config,
    write_cut_points,
    write_fold,
    write_folds,
    write_predictions,
    write_run_importance,
)
from kit.runtime import distributed as dist
from kit.splits.folds import Split, check_folds, fold_rows, make_split, split_key
from kit.splits.time import check_time_split, describe_time_split, make_time_split
from kit.submission import (
    SubmissionForm,
    build_submission,
    form_for,
    read_sample,
    target_sample,
    validate_submission,
)
from kit.tasks import FoldContext, FoldOutput, Prepared, RunScores, get_task
from kit.training import plots
from kit.training.importance import run_importance


class InMemory:
    """The run path of a table or image set held in memory (module doc)."""

    def __init__(self, cfg: Config, metric: Metric, comp_dir: Path, *, data_dir: Path,
                 run_dir: Path, resume: bool, comp_runs: Path):
        self.cfg, self.metric, self.task = cfg, metric, get_task(cfg.competition.task)
        self.prep = prep = self.task.prepare(cfg, comp_dir, data_dir, run_dir / "cache")
        if dist.is_main() and not resume and prep.features:
            _store_feature_lists(cfg, prep.features, run_dir)
        self.sample_path = data_dir / cfg.data.sample_submission  # checked now, not after training
        # the run's one read of it (one column of it for a target of several)
        self.sample = target_sample(read_sample(self.sample_path), cfg)
        _check_sample_columns(cfg, self.sample, self.sample_path)
        # a form the sample cannot hold (map@k's k) is refused before training
        form_for(cfg, self.sample, metric, classes=prep.classes, source=self.sample_path)
        self.split, self.split_hash = _split(prep, cfg, run_dir, comp_runs)
        self.classes, self.n_fits = prep.classes, cfg.cv.n_splits * cfg.cv.repeats
        self.oof_parts: list[pd.DataFrame] = []  # per fold: its OOF frame, with _row
        self.test_preds: list[np.ndarray] = []  # per fold: its test predictions
        # the run's OOF labels, and its OOF and test predictions as reported (finish)
        self.labels = self.plotted = self.submitted = None
        self.test_mean = self.cuts = None  # the folds' test mean, qwk's cut points (finish)

    def session(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def fold_rows(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return fold_rows(self.split, k, self.cfg.cv.n_splits)

    def finished(self, k: int, fold: Path) -> FoldOutput | None:
        """A finished fold's files (--resume), kept as a fitted fold's are."""
        done = read_fold(fold)
        if done is None:
            return None
        self._keep(*done[:2])
        return FoldOutput(None, None, done[2], history=read_history(fold) or [],
                          importance=read_fold_importance(fold))

    def fit_fold(self, ctx: FoldContext) -> FoldOutput:
        """The task's fold fit; its predictions written to the fold's folder (rank 0)."""
        out = self.task.fit_fold(self.prep, ctx)
        repeat, fold = divmod(ctx.fold, self.cfg.cv.n_splits)
        oof = _fold_frame(self.prep, fold, repeat, ctx.valid_idx, out.valid_pred)
        test = pred_frame(self.prep.test_ids, out.test_pred, self.classes)
        if dist.is_main():
            write_fold(ctx.fold_dir, oof, test, out.info)
        dist.barrier()  # rank 0 has written done.json before any rank moves on
        self._keep(oof, test)
        return out

    def _keep(self, oof: pd.DataFrame, test: pd.DataFrame) -> None:
        self.oof_parts.append(oof)
        self.test_preds.append(test[pred_columns(self.classes)].to_numpy())

    def _fold_labels(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels, predictions) of fold k's validation rows."""
        oof = self.oof_parts[k]
        return self.prep.y[oof["_row"].to_numpy()], oof[pred_columns(self.classes)].to_numpy()

    def score_fold(self, k: int, fold: Path) -> float:
        return self.metric(*self._fold_labels(k), self._weight(self.oof_parts[k]["_row"]))

    def _weight(self, rows) -> np.ndarray | None:
        """data.weight of these train rows (None: every row counts once)."""
        return None if self.prep.weight is None else self.prep.weight[np.asarray(rows)]

    def plot_fold(self, k: int, fold: Path, out: FoldOutput) -> None:
        """The fold's learning curves (from its history rows), the first augmented batch
        (images), the OOF confusion matrix or residuals."""
        if out.sample_batch is not None:
            y = out.sample_batch["y"].tolist()  # class indices -> names; values as they are
            plots.sample_grid(out.sample_batch["x"], fold / "sample_grid.png",
                              labels=[self.classes[i] for i in y] if self.classes else y)
        if out.history and not (fold / "curves.png").exists():
            _curves(out.history, fold / "curves.png", self.metric, out.info.get("best_epoch"))
        labels, pred = self._fold_labels(k)
        _oof_plot(fold, labels, pred, self.classes, f"fold {k}")

    def finish(self, run_dir: Path, fold_scores: list[float]) -> RunScores:
        """The run's oof.parquet (the mean over repeats) and test_pred.parquet (the folds'
        mean or vote); under qwk the cut points (cut_points.json) and the scores of the
        labels cut with them."""
        cfg, classes, cols, metric = self.cfg, self.classes, pred_columns(self.classes), \
            self.metric
        oof = _mean_over_repeats(pd.concat(self.oof_parts, ignore_index=True), cols)
        labels, oof_pred = self.prep.y[oof["_row"].to_numpy()], oof[cols].to_numpy()
        oof_score = metric(labels, oof_pred, self._weight(oof["_row"]))
        test = fold_mean(self.test_preds, cfg.train.fold_vote)
        cut = _cut_scores(self.prep, metric, self.oof_parts, oof, labels,  # None unless qwk
                          forward=cfg.cv.strategy == "time")
        extra, self.plotted, self.submitted, self.test_mean = {}, oof_pred, test, test
        if cut is not None:  # report labels cut with cuts fitted on the other folds (no leak)
            extra = {"fold_scores_argmax": fold_scores, "oof_argmax": oof_score}
            fold_scores, oof_score = cut.fold_scores, cut.oof
            self.plotted = cut_points.one_hot(cut.oof_labels, len(classes))
            self.cuts = cut.cuts  # the final cuts, from all OOF rows
            self.submitted = cut_points.apply(test, cut.cuts)
            write_cut_points(run_dir, cut_points.record(cut, metric, classes))
            _print_cuts(metric, cut, extra["oof_argmax"], run_dir)
        if self.prep.weight is not None:  # every score above weighs its rows by it
            extra["weight"] = cfg.data.weight
        write_predictions(run_dir, oof.drop(columns="_row"),
                          pred_frame(self.prep.test_ids, test, classes))
        self.labels = labels
        return RunScores(fold_scores, oof_score, _repeat_means(fold_scores, cfg.cv.n_splits),
                         self.split_hash, extra, oof_rows=len(oof), rows=len(self.prep.y))

    def submit_refit(self, test: np.ndarray) -> None:
        """Submit a refit's test predictions (kit/pipeline/refit.py) instead of the folds'
        mean, cut with the run's cut points under qwk."""
        self.submitted = test if self.cuts is None else cut_points.apply(test, self.cuts)

    def report(self, run_dir: Path, scores: RunScores, folds: list[FoldOutput]) -> None:
        """The run's OOF plot, and importance.csv / .png from the folds' tables."""
        _oof_plot(run_dir, self.labels, self.plotted, self.classes,
                  f"all folds ({self.metric.name} {scores.oof:.4f})")
        importance = run_importance([out.importance for out in folds])
        if importance is not None:
            path = write_run_importance(run_dir, importance)
            plots.importance_bars(importance, run_dir / "importance.png",
                                  kind=importance["type"].iloc[0])
            top = ", ".join(importance["feature"].head(5).astype(str))
            print(f"importance ({importance['type'].iloc[0]}, {path}): {top}, ...")

    def submit(self, dest: Path, form: SubmissionForm) -> Path:
        """submission.csv, checked against the sample read at the start."""
        frame = build_submission(self.prep.test_ids, self.submitted, self.classes, self.sample,
                                 form)
        validate_submission(frame, self.sample, source=str(dest), form=form)
        return write_csv(dest, frame)


def _print_cuts(metric: Metric, cut, oof_argmax: float, run_dir: Path) -> None:
    print(f"{metric.name} of labels cut with cut points fitted on the other folds (the "
          f"fold lines above: argmax): folds {', '.join(f'{s:.4f}' for s in cut.fold_scores)}, "
          f"OOF {cut.oof:.4f} (argmax {oof_argmax:.4f})")
    print(f"cut points for the test rows, fitted on all OOF rows: "
          f"{[round(float(c), 4) for c in cut.cuts]} -> {run_dir / 'cut_points.json'}")


def _curves(history: list[dict], path: Path, metric: Metric, best_epoch: int | None) -> None:
    """A network's learning curves (best_epoch: the trainer's, by train.monitor), or a
    boosting library's validation loss per round."""
    if "round" in history[0]:
        plots.boosting_curve(pd.DataFrame(history), path)
    else:
        plots.learning_curves(history, path, metric=metric.name, mode=metric.mode,
                              best_epoch=best_epoch)


def _oof_plot(folder: Path, labels, pred, classes, what: str) -> None:
    """A confusion matrix (classification) or the OOF scatter against truth and the
    residual histogram (regression)."""
    if not len(classes):
        plots.residuals(labels, pred[:, 0], folder / "residuals.png", title=f"{what}: OOF")
    elif len(classes) <= 50:
        plots.confusion(labels, pred.argmax(1), classes, folder / "confusion.png",
                        title=f"{what}: OOF confusion")


def _fold_frame(prep: Prepared, fold: int, repeat: int, valid_idx, valid_pred) -> pd.DataFrame:
    targets = prep.y[valid_idx] if not prep.classes else \
        np.asarray(prep.classes, dtype=object)[prep.y[valid_idx]]
    weight = None if prep.weight is None else prep.weight[valid_idx]
    frame = oof_frame(prep.ids[valid_idx], fold, targets, valid_pred, prep.classes, weight)
    frame.insert(2, "repeat", repeat)
    frame["_row"] = valid_idx
    return frame


def _split(prep: Prepared, cfg: Config, run_dir: Path, comp_runs: Path) -> tuple[Split, str]:
    """The run's split and its hash: folds.csv when resuming, else the competition's stored
    split with that hash (runs/<slug>/splits/), made the first time."""
    problem, times = cfg.competition.problem, _times(prep, cfg)
    labels = prep.y if prep.strata is None else prep.strata  # cv.stratify_on's, when set
    key = split_key(prep.ids, labels, cfg.cv, prep.groups, problem=problem, times=times)
    split = read_folds(run_dir, prep.ids)  # a resumed run keeps its folds
    if split is not None:
        if split.folds.shape[1] != cfg.cv.repeats:
            raise DataError(f"{run_dir / 'folds.csv'} holds {split.folds.shape[1]} repeats, the "
                            f"config cv.repeats = {cfg.cv.repeats}; start a new run")
        saved = read_split_key(run_dir)
        if saved and saved != key:  # same ids, other targets or groups: other data
            raise DataError(f"{run_dir / 'folds.csv'}: the run began on split {saved}, the "
                            f"data in hand gives split {key} (a target or group changed); "
                            "its finished folds were trained on other data: start a new run "
                            "instead of --resume")
    else:
        def make():  # seeded or time-ordered: the same on every DDP rank
            if times is not None:
                return make_time_split(times, cfg.cv, prep.groups)
            return Split(make_split(prep.ids, labels, cfg.cv, prep.groups, problem=problem))

        split = shared_split(comp_runs, key, prep.ids, make) if dist.is_main() else make()
        if dist.is_main():
            write_folds(run_dir, prep.ids, split, key)
    if times is None:
        for column in split.folds.T:
            check_folds(column, cfg.cv.n_splits, prep.groups)
        return split, key
    check_time_split(split, times, cfg.cv.n_splits, prep.groups)
    if dist.is_main():  # what the kit chose, before any fit: each fit's periods
        print("\n".join(describe_time_split(split, times, cfg.cv)))
    return split, key


def _times(prep: Prepared, cfg: Config) -> np.ndarray | None:
    """cv.time's parsed values (the task read them), None unless cv.strategy = "time"."""
    if cfg.cv.strategy != "time":
        return None
    if prep.times is None:
        raise DataError(f"cv.strategy = \"time\" orders a table's rows by cv.time, and the "
                        f"{cfg.competition.task!r} task gives no times; use another "
                        "cv.strategy (group by date with cv.group instead)")
    return prep.times


def _store_feature_lists(cfg: Config, features: dict, run_dir: Path) -> None:
    """The run's config.toml names the columns it trained on, not "auto": predict.py and
    --resume then build the same features next month, whatever "auto" would choose then."""
    resolved = dataclasses.replace(cfg.features, **{k: tuple(v) for k, v in features.items()})
    write_config(run_dir, cfg.replace(features=resolved))


def _check_sample_columns(cfg: Config, sample: pd.DataFrame, path: Path) -> None:
    """submission.id / submission.target, when set, must be the sample's first / last column."""
    for key, want, got in (("id", cfg.submission.id, sample.columns[0]),
                           ("target", cfg.submission.target, sample.columns[-1])):
        if want and want != got:
            raise DataError(f"{path}: column {got!r} where submission.{key} = {want!r}; fix "
                            f"submission.{key} in config.toml or data.sample_submission")


def _mean_over_repeats(oof: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """One row per training row: predictions averaged over the repeats that made them;
    `fold` is the row's fold in repeat 0 (docs/architecture.md)."""
    oof = oof.sort_values(["_row", "repeat"], kind="stable")
    first = oof.drop_duplicates("_row").set_index("_row")
    first[cols] = oof.groupby("_row")[cols].mean()
    return first.reset_index().drop(columns="repeat")[[*oof.columns.drop("repeat")]]


def _cut_scores(prep, metric, oof_parts, oof, labels, *, forward: bool):
    """Under qwk (mcc / f1_macro on two classes): the OOF's CutScores, its `folds` one score
    per fold fit (repeats too), each row's labels cut with cuts fitted on the other folds of
    its repeat (`forward`: a time split's earlier folds); None for another metric. With
    data.weight every cut is fitted, and every score taken, on the weighted rows."""
    if not cut_points.applies(metric, prep.classes):
        return None
    cols = pred_columns(prep.classes)
    parts = [(p[cols].to_numpy(), prep.y[p["_row"].to_numpy()], int(p["repeat"].iloc[0]))
             for p in oof_parts]
    weights = None if prep.weight is None else \
        [prep.weight[p["_row"].to_numpy()] for p in oof_parts]
    weight = None if prep.weight is None else prep.weight[oof["_row"].to_numpy()]
    scored = cut_points.score_cv(oof[cols].to_numpy(), labels, oof["fold"].to_numpy(), metric,
                                 forward=forward, weight=weight)
    return dataclasses.replace(scored, fold_scores=cut_points.fit_scores(
        parts, metric, forward=forward, weights=weights))


def _repeat_means(fold_scores: list[float], n_splits: int) -> list[float]:
    """Mean fold score of each repeat whose n_splits folds all finished."""
    full = len(fold_scores) // n_splits
    return [float(np.mean(fold_scores[r * n_splits:(r + 1) * n_splits])) for r in range(full)]


def fold_mean(test_preds: list[np.ndarray], vote: str = "soft") -> np.ndarray:
    """The run's test prediction: the folds' mean (soft) or their majority vote (hard)."""
    if vote == "hard":
        return fold_vote_hard(test_preds)
    return np.mean(test_preds, axis=0)


