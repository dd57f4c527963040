"""Ensembles over run folders: load the members, check they belong together, align them
by id, blend, and write the ensemble as a run folder of its own.

Any run folder that honours the prediction-file contract (docs/architecture.md, kit/run_folder/)
can be a member: a torch MLP with gradient-boosted trees on titanic, several CNNs on
digit-recognizer, two regressors on house prices, or an earlier ensemble. A run of another
competition, of the other problem kind, with other classes, or with missing or extra ids
is refused.

The methods (soft, weighted, hard), the hard-vote tie rule, the regression spaces and the
weight fitting are documented in kit/ensembles/blend.py; the files written in kit/ensembles/report.py.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kit import paths
from kit.ensembles.blend import METHODS, Stack, blend, check_method, parse_weights
from kit.ensembles.hill_climbing import DEFAULT_HILL, HillSettings
from kit.ensembles.report import sample_path, write_ensemble_run
from kit.errors import ConfigError, DataError
from kit.metrics.competition import resolve_metric
from kit.metrics.cut_points import applies, score_cv
from kit.metrics.registry import Metric, check_problem
from kit.run_folder import (
    OOF,
    REFIT,
    SUBMISSION,
    TEST_PRED,
    Run,
    combined_scores,
    has_targets,
    load_run,
    merge_submissions,
    new_run_dir,
    read_config,
    read_pred_frame,
    read_scores,
    submission_copy,
    target_dirs,
    write_config,
    write_ensemble_info,
    write_scores,
)
from kit.submission import (
    SubmissionForm,
    demo_trained,
    read_sample,
    submission_form,
    target_sample,
)

__all__ = ["METHODS", "TEST_FROM", "check_folds_shared", "ensemble_runs", "resolve_run_dir",
           "stack_runs"]

# Which test predictions the blend's weights are applied to: each member's test_pred.parquet
# (its fold models' mean), or its refit/test_pred.parquet (what its refit submitted:
# train.py --refit). The weights are fitted on the OOF, the fold models', either way.
TEST_FROM = ("folds", "refit")


def resolve_run_dir(run_dir: str | Path, slug: str, runs_root: Path) -> Path:
    """A path as given, or a folder name under <runs_root>/<slug>/."""
    path = Path(run_dir)
    if not path.is_dir() and (runs_root / slug / path).is_dir():
        return runs_root / slug / path
    if not path.is_dir():
        raise DataError(
            f"run folder not found: {run_dir} (nor {runs_root / slug / path}); pass a folder "
            f"made by scripts/train.py: {runs_root / slug}/<YYYYmmdd-HHMMSS>_<model>_<features>"
        )
    return path


def _align(frame: pd.DataFrame, order: pd.Index, what: str, run: Run, ref: Run) -> pd.DataFrame:
    """`frame` reindexed to `order`, or a DataError naming the missing / extra ids."""
    missing, extra = order.difference(frame.index), frame.index.difference(order)
    if len(missing) or len(extra):
        raise DataError(
            f"run {run.path}: its {what} ids differ from those of run {ref.path}: missing "
            f"{len(missing)} id(s) {missing[:5].tolist()}, extra {len(extra)} id(s) "
            f"{extra[:5].tolist()}; ensemble runs trained on the same data and all folds "
            "(a --fits K or --dry-run run covers part of the OOF rows)"
        )
    return frame.loc[order]


def _check_member(run: Run, ref: Run, slug: str) -> None:
    """Refuse a run of another competition, problem kind or set of classes than `ref`."""
    if run.cfg.competition.slug != slug:
        raise DataError(
            f"run {run.path} is from competition {run.cfg.competition.slug!r}, not "
            f"{slug!r} (see its config.toml); ensemble runs of one competition only"
        )
    if run.problem != ref.problem:
        raise DataError(
            f"run {run.path} is a {run.problem}, run {ref.path} a {ref.problem} "
            "(competition.problem in their config.toml): probabilities and values do not "
            "mix; ensemble runs of one problem kind only"
        )
    if sorted(run.classes) != sorted(ref.classes):
        raise DataError(
            f"run {run.path} has classes {run.classes}, run {ref.path} has {ref.classes} "
            "(scores.json); ensemble runs predicting the same classes only"
        )


def _check_targets(oof: pd.DataFrame, run: Run, ref: Run) -> None:
    """Targets equal row by row: as strings (labels), or to 1e-9 relative (regression values,
    which a float32 round trip may have moved in the last digits)."""
    if ref.problem == "regression":
        got, want = oof["target"].to_numpy(np.float64), ref.oof["target"].to_numpy(np.float64)
        differ = ~np.isclose(got, want, rtol=1e-9, atol=0.0)
    else:
        differ = (oof["target"].astype(str) != ref.oof["target"].astype(str)).to_numpy()
    if differ.any():
        raise DataError(
            f"run {run.path}: oof targets differ from run {ref.path} for ids "
            f"{oof.index[differ][:5].tolist()}; the runs saw different training data"
        )


def _labels(ref: Run) -> np.ndarray:
    """What the metric scores against: class indices, or a regression's float targets."""
    if ref.problem == "regression":
        return ref.oof["target"].to_numpy(np.float64)
    index = {c: i for i, c in enumerate(ref.classes)}
    labels = ref.oof["target"].astype(str).map(index).to_numpy()  # NaN: not a class
    unknown = pd.isna(labels)
    if unknown.any():
        targets = ref.oof["target"].to_numpy()
        raise DataError(
            f"{ref.path / OOF}: targets {sorted(set(targets[unknown].astype(str)))[:5]}"
            f" are not among the classes {ref.classes} of scores.json"
        )
    return labels.astype(np.int64)


def check_folds_shared(runs: list[Run], *, allow_different_folds: bool = False) -> list[str]:
    """Refuse partial members (their OOF misses rows) and members trained on other splits
    (their OOF scores are not comparable, and a blend fitted on them leaks); with
    `allow_different_folds` the latter become warnings, returned for the report."""
    for run in runs:
        if run.missing_folds:
            raise DataError(
                f"run {run.path} trained {run.scores.get('n_folds_trained')} of its "
                f"{run.missing_folds + run.scores.get('n_folds_trained', 0)} fold fits (--fits "
                "or --max-time), so its OOF misses rows; finish it with `python scripts/train.py "
                f"--resume {run.path}` or leave it out")
    ref, warnings_ = runs[0], []
    for run in runs[1:]:
        if run.split != ref.split or not run.split:
            message = (f"run {run.path} used split {run.split or 'unknown'}, run {ref.path} "
                       f"split {ref.split or 'unknown'} (scores.json, folds.csv)")
            if not allow_different_folds:
                raise DataError(f"{message}: blends need one split; retrain with the same [cv] "
                                "settings, or pass --allow-different-folds")
            warnings_.append(message)
    return warnings_


def stack_runs(runs: list[Run], slug: str) -> Stack:
    """Check the runs belong together (competition, problem, classes, ids, targets) and
    align them by id."""
    ref = runs[0]
    oofs, tests = [], []
    for run in runs:
        _check_member(run, ref, slug)
        oof = _align(run.oof, ref.oof.index, OOF, run, ref)
        _check_targets(oof, run, ref)
        oofs.append(oof[ref.columns].to_numpy(np.float64))
        test = _align(run.test, ref.test.index, TEST_PRED, run, ref)
        tests.append(test[ref.columns].to_numpy(np.float64))
    return Stack(
        problem=ref.problem, classes=ref.classes, oof_ids=ref.oof["id"].to_numpy(),
        folds=ref.oof["fold"].to_numpy(np.int64), targets=ref.oof["target"].to_numpy(),
        labels=_labels(ref), oof=np.stack(oofs), test_ids=ref.test["id"].to_numpy(),
        test=np.stack(tests), weight=_row_weights(runs), weight_name=_weight_name(ref),
        forward=any(run.cfg.cv.strategy == "time" for run in runs),
    )


def _weight_name(run: Run) -> str:
    return str(run.scores.get("weight") or "")


def _row_weights(runs: list[Run]) -> np.ndarray | None:
    """The OOF rows' data.weight, in the first run's row order: every member weighted by
    the same column with the same values (oof.parquet `weight`), or none weighted."""
    ref = runs[0]
    names = {_weight_name(run) for run in runs}
    if len(names) > 1:
        raise DataError(f"runs {ref.path} and others were scored with other row weights "
                        f"(data.weight: {sorted(names)}); ensemble runs weighted alike")
    if not _weight_name(ref):
        return None
    for run in runs:
        if "weight" not in run.oof.columns:
            raise DataError(f"{run.path / OOF} has no weight column though the run was scored "
                            f"with data.weight = {_weight_name(run)!r} (an older kit's run); "
                            f"train it again to blend it weighted")
        if not np.allclose(run.oof["weight"].loc[ref.oof.index], ref.oof["weight"]):
            raise DataError(f"{run.path / OOF}: its rows' weights differ from those of "
                            f"{ref.path}; ensemble runs trained on the same data")
    return ref.oof["weight"].to_numpy(np.float64)


def ensemble_runs(
    slug: str,
    run_dirs: Sequence[str | Path],
    *,
    method: str = "soft",
    weights: str | None = None,
    runs_root: str | Path | None = None,
    submissions_root: str | Path | None = None,
    data_dir: str | Path | None = None,
    allow_different_folds: bool = False,
    hill: HillSettings | None = None,
    test_from: str = "folds",
    log=print,
    folder: Path | None = None,
) -> dict:
    """Combine run folders into a new run folder plus a submission; returns the summary.
    Runs with several targets are blended column by column (ensemble_targets); `folder`:
    where one such column's ensemble goes (no copy under submissions/).

    The example needs run folders that scripts/train.py wrote, so doctest skips it:

    >>> ensemble_runs("titanic", ["runs/titanic/A_mlp_raw", "runs/titanic/B_gbdt_raw"],
    ...               method="weighted")["oof_score"]  # doctest: +SKIP
    """
    given_hill, hill = hill, check_options(method, weights, hill, len(run_dirs), test_from)
    runs_root = Path(runs_root) if runs_root is not None else paths.runs_root()
    members = [resolve_run_dir(d, slug, runs_root) for d in run_dirs]
    if folder is None and any(has_targets(m) for m in members):
        return ensemble_targets(slug, members, method=method, weights=weights,
                                runs_root=runs_root, submissions_root=submissions_root,
                                data_dir=data_dir, allow_different_folds=allow_different_folds,
                                hill=given_hill, test_from=test_from, log=log)
    runs = [load_run(m) for m in members]
    if test_from == "refit":
        runs = with_refit_tests(runs)
    stack = stack_runs(runs, slug)
    split_warnings = check_folds_shared(runs, allow_different_folds=allow_different_folds)
    for message in split_warnings:
        log(f"warning: {message}; the blend's scores mix splits")
    check_method(method, stack.problem)
    cfg = runs[0].cfg
    metric = check_problem(resolve_metric(cfg), stack.problem)  # built-in or metric.py
    check_direction(runs, metric)
    sample = sample_path(cfg, slug, data_dir)
    form = submission_form(target_sample(read_sample(sample), cfg), metric=metric, kind=cfg.submission.kind,
                           problem=stack.problem, classes=stack.classes, source=sample)
    what = f"classes {stack.classes}" if stack.classes else "a regression"
    log(f"{len(runs)} runs aligned: {len(stack.oof_ids)} OOF rows, {len(stack.test_ids)} test "
        f"rows, {what}, metric {metric.name} ({metric.mode})")
    _warn_hard(method, metric, form)
    parsed = parse_weights(weights, len(runs)) if weights is not None else None
    result = blend(stack, method, metric, parsed, hill=hill)
    cut = None
    if applies(metric, stack.classes):  # qwk: cut points refitted on the blend, scored in-CV
        forward = any(run.cfg.cv.strategy == "time" for run in runs)  # earlier folds only
        cut = score_cv(result.oof, stack.labels, stack.folds, metric, forward=forward,
                       weight=stack.weight)  # the members' data.weight, as they were cut
        log(f"cut points refitted on the blend: {[round(float(c), 4) for c in cut.cuts]}; OOF "
            f"{metric.name} {cut.oof:.5f} in-CV (argmax {result.score:.5f})")
    subs_root = Path(submissions_root) if submissions_root is not None else paths.submissions_root()
    # built from demo-trained runs, the ensemble keeps the mark: submit.py refuses it
    demo = "demo" if any(demo_trained(run.path) for run in runs) else ""
    summary = write_ensemble_run(
        runs, stack, result, metric, form, sample_path=sample,
        runs_dir=runs_root / slug, name=("ensemble", method, demo),
        submissions_dir=None if folder else subs_root / slug,
        split="" if split_warnings else runs[0].split, cut=cut, test_from=test_from,
        folder=folder,
    )
    return {**summary, "warnings": split_warnings, "demo": bool(demo)}


def ensemble_targets(slug: str, members: list[Path], *, runs_root: Path, submissions_root,
                     data_dir, log=print, **options) -> dict:
    """Runs with several targets blended column by column: the ensemble's folder holds one
    ensemble per column in targets/<column>/ (each one of the columns' runs), the scores
    over the columns, ensemble.json and one submission of every column."""
    cfg = read_config(members[0])
    targets = cfg.data.targets
    for member in members:
        if not has_targets(member) or read_config(member).data.targets != targets:
            raise DataError(f"run {member} predicts {list(read_config(member).data.targets)}, "
                            f"run {members[0]} {list(targets)} (data.target in their "
                            "config.toml): ensemble runs of the same target columns")
    demo = "demo" if any(demo_trained(m) for m in members) else ""
    folder = new_run_dir(runs_root / slug, "ensemble", options["method"], demo)
    folders = target_dirs(folder, targets)
    columns = {}
    try:  # a column that cannot be blended leaves no half-made ensemble
        for column, sub in folders.items():
            log(f"target {column!r}:")
            columns[column] = ensemble_runs(
                slug, [target_dirs(m, targets)[column] for m in members], runs_root=runs_root,
                data_dir=data_dir, log=log, folder=sub, **options)
        write_config(folder, cfg.replace(model=dataclasses.replace(cfg.model, name="ensemble")))
        scores = combined_scores({c: read_scores(f) for c, f in folders.items()})
        write_scores(folder, scores)
        merge_submissions(read_sample(sample_path(cfg, slug, data_dir)), folders,
                          folder / SUBMISSION)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    subs_root = Path(submissions_root) if submissions_root is not None else paths.submissions_root()
    summary = {**_over_columns(members, columns, options["method"]),
               "run_dir": str(folder), "submission": str(submission_copy(folder, subs_root,
                                                                          slug, "")),
               "run_submission": str(folder / SUBMISSION), "metric": scores["metric"],
               "mode": scores["mode"], "oof_score": scores["oof"], "demo": bool(demo),
               "targets": columns, "warnings": []}
    write_ensemble_info(folder, {k: v for k, v in summary.items() if k != "targets"})
    return summary


def _over_columns(members: list[Path], columns: dict[str, dict], method: str) -> dict:
    """The blend's summary over the columns, as one blend's reads: each member's weight and
    OOF score (the mean over the columns), the cross-validated score's mean (None when a
    column's blend fitted nothing)."""
    parts = list(columns.values())
    cv = [p.get("oof_score_cv") for p in parts]
    return {"method": method, "oof_score_cv": None if None in cv else float(np.mean(cv)),
            "members": [{"run_dir": str(m),
                         "weight": float(np.mean([p["members"][i]["weight"] for p in parts])),
                         "oof_score": float(np.mean([p["members"][i]["oof_score"]
                                                     for p in parts]))}
                        for i, m in enumerate(members)],
            "weights": [float(np.mean([p["weights"][i] for p in parts]))
                        for i in range(len(members))]}


def with_refit_tests(runs: list[Run]) -> list[Run]:
    """Each run with the test predictions its refit submitted (refit/test_pred.parquet); a
    run without them (trained without --refit, or an ensemble) is refused by name."""
    lacking = [str(run.path) for run in runs if not (run.path / REFIT / TEST_PRED).is_file()]
    if lacking:
        raise DataError(f"--test-from refit: {', '.join(lacking)} hold(s) no {REFIT}/{TEST_PRED} "
                        "(trained without --refit, or an ensemble); train them with "
                        "`python scripts/train.py ... --refit`, leave them out, or drop "
                        "--test-from refit")
    return [dataclasses.replace(
        run, test=read_pred_frame(run.path / REFIT / TEST_PRED, ["id"], run.classes))
        for run in runs]


def check_options(method: str, weights: str | None, hill: HillSettings | None,
                  members: int, test_from: str = "folds") -> HillSettings:
    """Refuse options that do not fit together (before any file is read); returns the hill
    settings (the defaults unless --method hill gave its own)."""
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if test_from not in TEST_FROM:
        raise ConfigError(f"--test-from {test_from!r} is not one of {', '.join(TEST_FROM)}")
    if weights is not None and method != "weighted":
        raise ConfigError(f"--weights applies to --method weighted, not {method!r}; add it")
    if method != "hill" and hill is not None:
        raise ConfigError(f"--negative-weights, --max-steps, --bags and --bag-fraction apply "
                          f"to --method hill, not {method!r}; add --method hill")
    hill = hill or DEFAULT_HILL
    if hill.max_steps < 1:
        raise ConfigError(f"--max-steps {hill.max_steps}: give 1 or more greedy steps")
    if hill.bags < 1:
        raise ConfigError(f"--bags {hill.bags}: give 1 (one climb over all members) or more")
    if not 0 < hill.bag_fraction <= 1:
        raise ConfigError(f"--bag-fraction {hill.bag_fraction}: give a share of the members "
                          "in (0, 1], e.g. 0.5")
    if members < 2:
        raise ConfigError(f"an ensemble needs at least two run folders, got {members}")
    return hill


def check_direction(runs: list[Run], metric: Metric) -> None:
    """Each member's scores.json stored the direction it was scored in; a metric file edited
    since (MODE flipped) would rank the members and climb the weights the wrong way."""
    for run in runs:
        stored = run.scores.get("mode")
        if run.scores.get("metric") == metric.name and stored and stored != metric.mode:
            where = metric.source or "kit/metrics/registry.py"
            raise DataError(f"run {run.path} scored {metric.name!r} with mode {stored!r} "
                            f"(scores.json), {where} now says {metric.mode!r}; restore MODE "
                            "there or retrain the run")


def _warn_hard(method: str, metric: Metric, form: SubmissionForm) -> None:
    if method == "hard" and (metric.scores in ("probabilities", "ranked")
                             or form.kind in ("proba", "ranked")):
        warnings.warn(
            f"hard voting outputs one-hot votes, not probabilities, but the metric is "
            f"{metric.name!r} and the submission holds {form.kind!r}; --method soft or "
            "weighted suits these better",
            stacklevel=3,
        )
