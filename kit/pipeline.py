"""run_cv: folds -> per-fold fit -> OOF + test predictions -> scores -> checked submission.

The same loop serves every competition; what differs lives in the task adapter
(kit/tasks/<task>.py) and the competition's hooks.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit import out_of_core
from kit.config import Config, to_toml
from kit.ensembles.blend import fold_vote_hard
from kit.errors import DataError
from kit.io import write_text
from kit.metrics import cut_points
from kit.metrics.competition import resolve_metric
from kit.paths import competition_dir
from kit.run_folder import (
    oof_frame,
    pred_columns,
    pred_frame,
    read_fold,
    read_folds,
    read_split_key,
    scores_dict,
    shared_split,
    write_cut_points,
    write_fold,
    write_folds,
    write_predictions,
    write_scores,
)
from kit.runtime import distributed as dist
from kit.splits.folds import Split, check_folds, fold_rows, make_split, split_key
from kit.splits.time import check_time_split, describe_time_split, make_time_split
from kit.submission import build_submission, form_for, read_sample, write_submission
from kit.tasks import FoldContext, Prepared, get_task
from kit.training.importance import write_run_importance
from kit.training.track import make_tracker
from kit.training.trainer import Trainer


@dataclass
class RunOptions:
    data_dir: Path
    run_dir: Path
    submissions_dir: Path
    device: object  # torch.device
    folds: int | None = None  # train only the first K folds
    resume: bool = False
    max_time: float | None = None  # seconds for the whole run
    label: str = ""  # "dryrun" / "demo": marks the submission file name
    submit: bool = True  # false: no submission files (a tuning trial's CV run)
    on_fold: Callable[[int, float], None] | None = None  # (fold, score) after each fold
    on_start: Callable[[], None] | None = None  # inputs and split checked, before fold 0
    comp_runs: Path | None = None  # where the competition's splits live (default: run_dir's parent)


def _fold_frame(prep: Prepared, fold: int, repeat: int, valid_idx, valid_pred) -> pd.DataFrame:
    targets = prep.y[valid_idx] if not prep.classes else \
        np.asarray(prep.classes, dtype=object)[prep.y[valid_idx]]
    frame = oof_frame(prep.ids[valid_idx], fold, targets, valid_pred, prep.classes)
    frame.insert(2, "repeat", repeat)
    frame["_row"] = valid_idx
    return frame


def _split(prep: Prepared, cfg: Config, run_dir: Path, comp_runs: Path) -> tuple[Split, str]:
    """The run's split and its hash: folds.csv when resuming, else the competition's stored
    split with that hash (runs/<slug>/splits/), made the first time."""
    problem, times = cfg.competition.problem, _times(prep, cfg)
    key = split_key(prep.ids, prep.y, cfg.cv, prep.groups, problem=problem, times=times)
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
            return Split(make_split(prep.ids, prep.y, cfg.cv, prep.groups, problem=problem))

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


def run_cv(cfg: Config, opts: RunOptions) -> dict:
    """Train every fold (or the first `opts.folds`), write predictions, scores, submission."""
    comp_dir = competition_dir(cfg.competition.slug)
    why = out_of_core.reason(cfg, opts.data_dir)
    if why:  # a table larger than memory: streamed throughout
        return out_of_core.run(cfg, opts, comp_dir, why)
    started = time.monotonic()
    deadline = started + opts.max_time if opts.max_time else None
    metric = resolve_metric(cfg)  # a built-in, or the competition's metric.py
    task = get_task(cfg.competition.task)
    main = dist.is_main()
    prep = task.prepare(cfg, comp_dir, opts.data_dir, opts.run_dir / "cache")
    if main and not opts.resume and prep.features:
        _store_feature_lists(cfg, prep.features, opts.run_dir)
    sample_path = opts.data_dir / cfg.data.sample_submission  # checked now, not after training
    sample = read_sample(sample_path)
    _check_sample_columns(cfg, sample, sample_path)
    # a form the sample cannot hold (map@k's k) is refused before training
    form_for(cfg, sample, metric, classes=prep.classes, source=sample_path)
    split, split_hash = _split(prep, cfg, opts.run_dir, opts.comp_runs or opts.run_dir.parent)
    n_fits = cfg.cv.n_splits * cfg.cv.repeats  # fold f: repeat f // n_splits, fold f % n_splits
    n_folds = min(opts.folds or n_fits, n_fits)
    tracker = make_tracker(cfg, opts.run_dir, main=main)
    if main and opts.on_start is not None:
        opts.on_start()

    def make_trainer(cfg_, fold_dir, device, *, objective, desc=""):
        return Trainer(cfg_, fold_dir, device, metric, objective, deadline=deadline,
                       desc=desc, tracker=tracker)

    oof_parts, test_preds, fold_scores, infos = [], [], [], []
    for k in range(n_folds):
        fold_dir = opts.run_dir / f"fold{k}"
        done = read_fold(fold_dir) if opts.resume else None  # a new run trains every fold
        if done is None:
            if deadline is not None and time.monotonic() >= deadline:
                print(f"time budget reached before fold {k}; keeping {k} finished folds")
                break
            fold_dir.mkdir(parents=True, exist_ok=True)
            train_idx, valid_idx = fold_rows(split, k, cfg.cv.n_splits)
            ctx = FoldContext(cfg, k, train_idx, valid_idx, fold_dir, opts.device,
                              functools.partial(make_trainer, desc=f"fold {k}"),
                              extras={"resume": opts.resume})
            tracker.start_fold(k)
            out = task.fit_fold(prep, ctx)
            if main and "sample_batch" in ctx.extras:  # image tasks: the first augmented batch
                from kit.training.plots import sample_grid

                batch = ctx.extras["sample_batch"]
                y = batch["y"].tolist()  # class indices -> names; a regression's values as they are
                sample_grid(batch["x"], fold_dir / "sample_grid.png",
                            labels=[prep.classes[i] for i in y] if prep.classes else y)
            repeat, fold = divmod(k, cfg.cv.n_splits)
            done = (_fold_frame(prep, fold, repeat, valid_idx, out.valid_pred),
                    pred_frame(prep.test_ids, out.test_pred, prep.classes), out.info)
            if main:
                write_fold(fold_dir, *done)
            dist.barrier()  # rank 0 has written done.json before any rank moves on
        oof_k, test_k, info = done
        labels_k = prep.y[oof_k["_row"].to_numpy()]
        pred_k = oof_k[pred_columns(prep.classes)].to_numpy()
        score = metric(labels_k, pred_k)
        if main:
            _fold_plot(fold_dir, labels_k, pred_k, prep.classes, f"fold {k}", metric,
                       best_epoch=info.get("best_epoch"))  # the trainer's, by train.monitor
            repeat = f" (repeat {k // cfg.cv.n_splits})" if cfg.cv.repeats > 1 else ""
            reason = f"  ({info['stop_reason']})" if info.get("stop_reason") else ""
            print(f"fold {k}{repeat}: {metric.name} {score:.4f}{reason}")
        tracker.finish_fold({"fold": k, "score": score})
        if opts.on_fold is not None:  # a tuning trial reports, and may be pruned here
            opts.on_fold(k, score)
        oof_parts.append(oof_k)
        test_preds.append(test_k[pred_columns(prep.classes)].to_numpy())
        fold_scores.append(score)
        infos.append(info)
    if not oof_parts:
        raise DataError("no fold finished (time budget too small?); nothing to submit")
    if not main:  # rank 0 writes the run's files; the others are done
        return {"run_dir": str(opts.run_dir), "rank": dist.info().rank}
    summary = _finish(cfg, opts, prep, metric, oof_parts, test_preds, fold_scores, infos,
                      started, sample, split_hash)
    tracker.finish_cv(summary["cv"])
    return summary


def _store_feature_lists(cfg: Config, features: dict, run_dir: Path) -> None:
    """The run's config.toml names the columns it trained on, not "auto": predict.py and
    --resume then build the same features next month, whatever "auto" would choose then."""
    resolved = dataclasses.replace(cfg.features, **{k: tuple(v) for k, v in features.items()})
    write_text(run_dir / "config.toml", to_toml(cfg.replace(features=resolved)))


def _check_sample_columns(cfg: Config, sample: pd.DataFrame, path: Path) -> None:
    """submission.id / submission.target, when set, must be the sample's first / last column."""
    for key, want, got in (("id", cfg.submission.id, sample.columns[0]),
                           ("target", cfg.submission.target, sample.columns[-1])):
        if want and want != got:
            raise DataError(f"{path}: column {got!r} where submission.{key} = {want!r}; fix "
                            f"submission.{key} in config.toml or data.sample_submission")


def _fold_plot(fold_dir: Path, labels, pred, classes, what: str, metric=None, *,
               best_epoch: int | None = None) -> None:
    """Learning curves; then a confusion matrix (classification) or the OOF scatter against
    truth and the residual histogram (regression)."""
    from kit.training.plots import boosting_curve, confusion, learning_curves, residuals

    history = fold_dir / "history.csv"
    if metric is not None and history.exists() and not (fold_dir / "curves.png").exists():
        rows = pd.read_csv(history)
        if "round" in rows.columns:  # a boosting library's validation loss per round
            boosting_curve(rows, fold_dir / "curves.png")
        else:
            learning_curves(rows.to_dict("records"), fold_dir / "curves.png",
                            metric=metric.name, mode=metric.mode, best_epoch=best_epoch)
    if not len(classes):
        residuals(labels, pred[:, 0], fold_dir / "residuals.png", title=f"{what}: OOF")
    elif len(classes) <= 50:
        confusion(labels, pred.argmax(1), classes, fold_dir / "confusion.png",
                  title=f"{what}: OOF confusion")


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
    its repeat (`forward`: a time split's earlier folds); None for another metric."""
    if not cut_points.applies(metric, prep.classes):
        return None
    cols = pred_columns(prep.classes)
    parts = [(p[cols].to_numpy(), prep.y[p["_row"].to_numpy()], int(p["repeat"].iloc[0]))
             for p in oof_parts]
    scored = cut_points.score_cv(oof[cols].to_numpy(), labels, oof["fold"].to_numpy(), metric,
                                 forward=forward)
    return dataclasses.replace(scored, folds=cut_points.fit_scores(parts, metric,
                                                                   forward=forward))


def _repeat_means(fold_scores: list[float], n_splits: int) -> list[float]:
    """Mean fold score of each repeat whose n_splits folds all finished."""
    full = len(fold_scores) // n_splits
    return [float(np.mean(fold_scores[r * n_splits:(r + 1) * n_splits])) for r in range(full)]


def fold_mean(test_preds: list[np.ndarray], vote: str = "soft") -> np.ndarray:
    """The run's test prediction: the folds' mean (soft) or their majority vote (hard)."""
    if vote == "hard":
        return fold_vote_hard(test_preds)
    return np.mean(test_preds, axis=0)


def _finish(cfg, opts, prep, metric, oof_parts, test_preds, fold_scores, infos, started,
            sample, split_hash):
    classes, cols = prep.classes, pred_columns(prep.classes)
    oof = _mean_over_repeats(pd.concat(oof_parts, ignore_index=True), cols)
    labels, oof_pred = prep.y[oof["_row"].to_numpy()], oof[cols].to_numpy()
    oof_score = metric(labels, oof_pred)
    test = fold_mean(test_preds, cfg.ensemble.fold_vote)
    cut = _cut_scores(prep, metric, oof_parts, oof, labels,  # None unless qwk (kit/cut_points)
                      forward=cfg.cv.strategy == "time")
    extra, plotted, submitted = {}, oof_pred, test
    if cut is not None:  # report labels cut with cuts fitted on the other folds (no leak)
        extra = {"folds_argmax": fold_scores, "oof_argmax": oof_score}
        fold_scores, oof_score = cut.folds, cut.oof
        plotted = cut_points.one_hot(cut.oof_labels, len(classes))
        submitted = cut_points.apply(test, cut.cuts)  # the final cuts, from all OOF rows
        write_cut_points(opts.run_dir, cut_points.record(cut, metric, classes))
        print(f"{metric.name} of labels cut with cut points fitted on the other folds (the "
              f"fold lines above: argmax): folds {', '.join(f'{s:.4f}' for s in cut.folds)}, "
              f"OOF {oof_score:.4f} (argmax {extra['oof_argmax']:.4f})")
        print(f"cut points for the test rows, fitted on all OOF rows: "
              f"{[round(float(c), 4) for c in cut.cuts]} -> {opts.run_dir / 'cut_points.json'}")
    write_predictions(opts.run_dir, oof.drop(columns="_row"),
                      pred_frame(prep.test_ids, test, classes))
    repeat_means = _repeat_means(fold_scores, cfg.cv.n_splits)
    scores = scores_dict(metric, cfg.competition.problem, fold_scores, oof_score, classes,
                         n_folds_trained=len(fold_scores), n_splits=cfg.cv.n_splits,
                         repeats=cfg.cv.repeats, repeat_means=repeat_means, split=split_hash,
                         fold_info=infos, **extra)
    scores["seconds"] = time.monotonic() - started  # training and predictions, not the plots
    scores["oof_rows"] = len(oof)  # a time split's first block (and --folds K) is not in it
    write_scores(opts.run_dir, scores)
    _fold_plot(opts.run_dir, labels, plotted, classes,
               f"all folds ({metric.name} {oof_score:.4f})")
    importance = write_run_importance(
        opts.run_dir, [opts.run_dir / f"fold{k}" for k in range(len(fold_scores))])
    if importance is not None:
        top = ", ".join(importance["feature"].head(5).astype(str))
        print(f"importance ({importance['type'].iloc[0]}, {opts.run_dir / 'importance.csv'}): "
              f"{top}, ...")
    submission = copy = None
    if opts.submit:
        sample_path = opts.data_dir / cfg.data.sample_submission
        form = form_for(cfg, sample, metric, classes=classes, source=sample_path)
        frame = build_submission(prep.test_ids, submitted, classes, sample, form)
        submission = write_submission(frame, sample_path, opts.run_dir / "submission.csv", form)
        marked = not opts.label or opts.run_dir.name.endswith(f"_{opts.label}")
        name = opts.run_dir.name + ("" if marked else f"_{opts.label}") + ".csv"
        copy = write_submission(frame, sample_path, opts.submissions_dir /
                                cfg.competition.slug / name, form)
    seconds = time.monotonic() - started
    covered = "" if len(oof) == len(prep.y) else f" on {len(oof)} of {len(prep.y)} rows"
    print(f"CV {metric.name}: {scores['mean']:.4f} ± {scores['std']:.4f} over "
          f"{len(fold_scores)} folds (OOF {oof_score:.4f}{covered}) in {seconds:.1f}s")
    if len(repeat_means) > 1:
        print(f"  over {len(repeat_means)} repeats: {np.mean(repeat_means):.4f} ± "
              f"{np.std(repeat_means):.4f} (the std of the repeat means)")
    if copy is not None:
        print(f"submission: {copy}")
    return {"run_dir": str(opts.run_dir), "submission": copy and str(copy),
            "run_submission": submission and str(submission),
            "cv": {"metric": metric.name, "mean": scores["mean"], "std": scores["std"],
                   "folds": scores["folds"], "oof": scores["oof"],
                   "repeat_means": repeat_means},
            "seconds": seconds}
