"""The ensemble's outputs: its run folder, submission, correlation heatmap and printed report.

An ensemble run folder holds what a training run's does for the ensemble to read it again
(config.toml, oof.parquet, test_pred.parquet, scores.json, submission.csv), so an ensemble
can itself be a member, plus ensemble.json (members, weights, scores) and correlation.png.

Imports run one way: kit.ensembles.blend (arrays) <- this module (files, text) <- kit.ensembles.build.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kit import paths
from kit.config import Config
from kit.ensembles.blend import Blend, Stack
from kit.errors import DataError
from kit.io import atomic_path
from kit.metrics.cut_points import CutScores, apply, record, score_cv
from kit.metrics.registry import Metric
from kit.run_folder import (
    ENSEMBLE_INFO,
    SUBMISSION,
    TARGETS,
    Run,
    new_run_dir,
    oof_frame,
    pred_frame,
    provenance,
    scores_dict,
    write_config,
    write_cut_points,
    write_ensemble_info,
    write_predictions,
    write_scores,
)
from kit.submission import (
    SubmissionForm,
    build_submission,
    read_sample,
    target_sample,
    validate_submission,
    write_submission,
)


def sample_path(cfg: Config, slug: str, data_dir: str | Path | None) -> Path:
    """<data_dir>/<data.sample_submission>; data_dir may also be the data root above <slug>."""
    name = cfg.data.sample_submission
    folder = Path(data_dir) if data_dir is not None else paths.data_root() / slug
    if not (folder / name).exists() and (folder / slug / name).exists():
        folder = folder / slug
    if not (folder / name).exists():
        raise DataError(
            f"sample submission not found: {folder / name} (data.sample_submission = {name!r}); "
            f"download the data of {slug!r} or pass --data DIR, the folder holding {name}"
        )
    return folder / name


def member_name(run_dir: str | Path) -> str:
    """A member's name in tables and plots: its folder's, or for one column of a run with
    several targets (<run>/targets/<column>) the run's."""
    path = Path(run_dir)
    return path.parent.parent.name if path.parent.name == TARGETS else path.name


def correlation(oof: np.ndarray) -> np.ndarray:
    """(M, M) Pearson correlation of members' OOF predictions.

    Binary: the positive (last) class's probability; multi-class: all columns flattened;
    regression: the `pred` column (its one column). A constant member gets NaN.
    """
    flat = oof[:, :, -1] if oof.shape[2] == 2 else oof.reshape(len(oof), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(flat)


def save_heatmap(dest: Path, names: list[str], corr: np.ndarray) -> Path:
    """correlation.png: the matrix annotated, full run names on both axes."""
    fig = heatmap_figure(names, corr)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight",
                    metadata={"Title": fig.axes[0].get_title()})
    return dest


def heatmap_figure(names: list[str], corr: np.ndarray):
    """The Figure behind correlation.png (no pyplot: no global state). The colour scale
    spans the off-diagonal values: members at 0.96 and 0.99 are two colours, not one."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # Figure renders with Agg, no display needed

    vmin, vmax = off_diagonal_range(corr)
    n, longest = len(names), max((len(name) for name in names), default=0)
    cell, label = 0.8, 0.065 * longest  # inches: a cell; a name at 8 pt (~0.065 in a char)
    # x names are rotated 45 degrees: they need ~0.7 of their length below the axes
    fig = Figure(figsize=(1.5 + label + cell * n + 1.2, 1.0 + 0.72 * label + cell * n),
                 layout="constrained")
    ax = fig.add_subplot()
    # the diagonal (1 by definition) in gray, off the scale; NaN (a constant member) too
    shown = np.where(np.eye(n, dtype=bool), np.nan, corr)
    cmap = colormaps["viridis"].with_extremes(bad="lightgray")
    image = ax.imshow(shown, vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for (i, j), value in np.ndenumerate(corr):
        dark = np.isfinite(value) and value < (vmin + vmax) / 2  # viridis: dark at the low end
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    ax.set_title(f"correlation of OOF predictions ({vmin:.3f} to {vmax:.3f})")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def off_diagonal_range(corr: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite correlations between two different members, widened to
    0.01 when they are equal (two members: one value); (-1, 1) when there are none."""
    corr = np.asarray(corr, dtype=float)
    values = corr[~np.eye(len(corr), dtype=bool)]
    values = values[np.isfinite(values)]
    if not len(values):
        return -1.0, 1.0
    low, high = float(values.min()), float(values.max())
    if high - low < 0.01:
        middle = (low + high) / 2
        low, high = middle - 0.005, middle + 0.005
    return low, high


def format_table(summary: dict) -> str:
    """Members' and ensemble's OOF scores with the weights, as aligned text."""
    rows = [(member_name(m["run_dir"]), m["oof_score"], m["weight"]) for m in summary["members"]]
    method = summary["method"]
    cut = summary.get("oof_score_cut_points")  # qwk: members' rows are cut points in-CV too
    argmax = ", argmax" if cut is not None else ""
    rows.append((f"ensemble ({method}{argmax}, in-sample)", summary["oof_score_in_sample"], None))
    if summary["oof_score_cv"] is not None:
        rows.append((f"ensemble ({method}{argmax}, cross-validated)", summary["oof_score_cv"],
                     None))
    if cut is not None:
        rows.append((f"ensemble ({method}, cut points in-CV)", cut, None))
    width = max(len(r[0]) for r in rows)
    metric = f"{summary['metric']} ({summary['mode']})"
    lines = [f"{'member':<{width}}  {metric:>16}  {'weight':>7}"]
    for name, score, weight in rows:
        w = f"{weight:7.3f}" if weight is not None else ""
        lines.append(f"{name:<{width}}  {score:16.5f}  {w}".rstrip())
    return "\n".join(lines)


def format_matrix(names: list[str], corr) -> str:
    """The correlation matrix as text; rows named, columns numbered in the same order."""
    corr = np.array(corr, dtype=float)  # None (JSON for NaN) -> nan
    labels = [f"[{i}] {name}" for i, name in enumerate(names)]
    width = max(len(label) for label in labels)
    head = " " * width + "".join(f"{f'[{i}]':>8}" for i in range(len(names)))
    rows = [f"{label:<{width}}" + "".join(f"{v:8.3f}" for v in row)
            for label, row in zip(labels, corr)]
    return "\n".join([head, *rows])


def write_ensemble_run(
    runs: list[Run],
    stack: Stack,
    blend: Blend,
    metric: Metric,
    form: SubmissionForm,
    *,
    sample_path: Path,
    runs_dir: Path,
    name: tuple[str, ...],
    submissions_dir: Path | None,
    split: str = "",
    cut: CutScores | None = None,
    test_from: str = "folds",
    folder: Path | None = None,
) -> dict:
    """Write the ensemble's run folder (runs_dir/<time>_<name parts>, or `folder`: one
    column's of an ensemble with several targets) and submission copy;
    return the summary dict. With `cut` (qwk), the submission holds labels cut with its cuts
    and the scores are its in-CV ones. `test_from` (recorded): the members' test predictions
    blended, their fold models' ("folds") or their refit's ("refit")."""
    cfg = runs[0].cfg
    sample = target_sample(read_sample(sample_path), cfg)  # one column of several targets
    submitted = blend.test if cut is None else apply(blend.test, cut.cuts)
    frame = build_submission(stack.test_ids, submitted, stack.target_classes, sample, form)
    # Checked before the folder exists: a bad submission leaves no half-made ensemble run.
    validate_submission(frame, sample, source=f"ensemble of {len(runs)} runs", form=form)
    run_dir = folder or new_run_dir(runs_dir, *name)
    write_predictions(
        run_dir,
        oof_frame(stack.oof_ids, stack.folds, stack.targets, blend.oof, stack.classes,
                  stack.weight),
        pred_frame(stack.test_ids, blend.test, stack.classes),
    )
    write_scores(run_dir, _scores(stack, blend, metric, split, cut))
    if cut is not None:
        write_cut_points(run_dir, record(cut, metric, stack.classes))
    model = dataclasses.replace(cfg.model, name="ensemble")
    write_config(run_dir, cfg.replace(model=model))
    names = [member_name(run.path) for run in runs]
    corr = correlation(stack.oof)
    heatmap = save_heatmap(run_dir / "correlation.png", names, corr)
    copy = write_submission(frame, sample, run_dir / SUBMISSION, form)
    if submissions_dir is not None:  # a column of an ensemble with several targets: none
        copy = write_submission(frame, sample, submissions_dir / f"{run_dir.name}.csv", form)
    summary = {**_summary(runs, stack, blend, metric, run_dir, copy, heatmap, corr),
               "test_from": test_from}
    if cut is not None:  # members and blend alike: labels cut with cuts fitted in-CV
        summary = _cut_summary(summary, stack, blend, metric, cut)
    write_ensemble_info(run_dir, {**summary, **provenance()})
    return summary


def _scores(stack: Stack, blend: Blend, metric: Metric, split: str,
            cut: CutScores | None = None) -> dict:
    """scores.json per the contract, on the ensemble's (cross-validated when fitted) OOF;
    with `cut`, its in-CV cut-point scores (the argmax ones kept beside them)."""
    weighted = {"weight": stack.weight_name} if stack.weight is not None else {}
    if cut is not None:
        argmax = _scores(stack, blend, metric, split)
        return scores_dict(metric, stack.problem, cut.fold_scores, cut.oof, stack.classes,
                           split=split, fold_scores_argmax=argmax["fold_scores"],
                           oof_argmax=argmax["oof"], **weighted)
    folds = [stack.score(metric, blend.oof, stack.folds == k) for k in np.unique(stack.folds)]
    return scores_dict(metric, stack.problem, folds, stack.score(metric, blend.oof),
                       stack.classes, split=split, **weighted)


def _cut_summary(summary: dict, stack: Stack, blend: Blend, metric: Metric,
                 cut: CutScores) -> dict:
    """The summary's scores as the submission is scored: each member's OOF and the
    blend's, labels cut with cuts fitted on the other folds."""
    members = [{**m, "oof_score_argmax": m["oof_score"],
                "oof_score": score_cv(pred, stack.labels, stack.folds, metric,
                                      weight=stack.weight).oof}
               for m, pred in zip(summary["members"], stack.oof)]
    return {**summary, "members": members, "oof_score": cut.oof,
            "oof_score_argmax": blend.score, "oof_score_cut_points": cut.oof,
            "cut_points": [float(c) for c in cut.cuts]}


def _summary(runs, stack, blend, metric, run_dir, submission, heatmap, corr) -> dict:
    members = [
        {"run_dir": str(run.path), "oof_score": stack.score(metric, pred), "weight": float(w)}
        for run, pred, w in zip(runs, stack.oof, blend.weights)
    ]
    return {
        "run_dir": str(run_dir),
        "submission": str(submission),
        "run_submission": str(run_dir / SUBMISSION),
        "method": blend.method,
        "metric": metric.name,
        "mode": metric.mode,
        "problem": stack.problem,
        "oof_score": blend.score,
        "oof_score_in_sample": blend.score_in_sample,
        "oof_score_cv": blend.score_cv,
        "members": members,
        "weights": [float(w) for w in blend.weights],
        "weights_source": blend.weights_source,
        "objective": blend.objective,
        "objective_cv": blend.objective_cv,
        "coefficients": blend.coefficients,
        "settings": blend.settings,
        "fold_weights": {str(k): [float(x) for x in w] for k, w in blend.fold_weights.items()},
        "correlation": [[None if np.isnan(v) else float(v) for v in row] for row in corr],
        "heatmap": str(heatmap),
        "ensemble_json": str(run_dir / ENSEMBLE_INFO),
        "classes": stack.classes,
    }
