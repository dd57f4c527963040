"""The ensemble's outputs: its run folder, submission, correlation heatmap and printed report.

An ensemble run folder holds what a training run's does for the ensemble to read it again
(config.toml, oof.parquet, test_pred.parquet, scores.json, submission.csv), so an ensemble
can itself be a member, plus ensemble.json (members, weights, scores) and correlation.png.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kit import paths
from kit.config import Config, to_toml
from kit.errors import DataError
from kit.io import atomic_path, write_json, write_parquet, write_text
from kit.metrics import Metric
from kit.submission import (
    build_submission,
    read_sample,
    validate_submission,
    write_submission,
)

if TYPE_CHECKING:  # kit.ensemble imports this module; the types are for reading only
    from kit.ensemble import Blend, Run, Stack


def new_run_dir(parent: Path, method: str) -> Path:
    """<parent>/<YYYYmmdd-HHMMSS>_ensemble_<method>, suffixed -2, -3 ... when taken."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}_ensemble_{method}"
    path, n = parent / stem, 1
    while path.exists():
        n += 1
        path = parent / f"{stem}-{n}"
    return path


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


def correlation(oof: np.ndarray) -> np.ndarray:
    """(M, M) Pearson correlation of members' OOF probabilities.

    Binary: the positive (last) class's probability; multi-class: all columns flattened.
    A member with constant predictions gets NaN.
    """
    flat = oof[:, :, -1] if oof.shape[2] == 2 else oof.reshape(len(oof), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(flat)


def save_heatmap(dest: Path, names: list[str], corr: np.ndarray) -> Path:
    """The correlation matrix as an annotated PNG heatmap (no pyplot: no global state)."""
    from matplotlib.figure import Figure  # Figure renders with Agg, no display needed

    size = 2.5 + 0.6 * len(names)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.add_subplot()
    image = ax.imshow(np.nan_to_num(corr, nan=0.0), vmin=-1, vmax=1, cmap="coolwarm")
    labels = [n if len(n) <= 32 else n[:29] + "..." for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    for (i, j), value in np.ndenumerate(corr):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title("correlation of OOF probabilities")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return dest


def format_table(summary: dict) -> str:
    """Members' and ensemble's OOF scores with the weights, as aligned text."""
    rows = [(Path(m["run_dir"]).name, m["oof_score"], m["weight"]) for m in summary["members"]]
    method = summary["method"]
    rows.append((f"ensemble ({method}, in-sample)", summary["oof_score_in_sample"], None))
    if summary["oof_score_cv"] is not None:
        rows.append((f"ensemble ({method}, cross-validated)", summary["oof_score_cv"], None))
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
    *,
    sample_path: Path,
    run_dir: Path,
    submissions_dir: Path,
) -> dict:
    """Write the ensemble's run folder and submission copy; return the summary dict."""
    cfg = runs[0].cfg
    sample = read_sample(sample_path)
    frame = build_submission(
        stack.test_ids, blend.test, stack.target_classes, sample, kind=cfg.submission.kind
    )
    # Checked before the folder exists: a bad submission leaves no half-made ensemble run.
    validate_submission(frame, sample, source=f"ensemble of {len(runs)} runs")
    run_dir.mkdir(parents=True)
    columns = [f"p_{c}" for c in stack.classes]
    oof = pd.DataFrame({"id": stack.oof_ids, "fold": stack.folds, "target": stack.targets})
    oof[columns] = blend.oof
    write_parquet(run_dir / "oof.parquet", oof)
    test = pd.DataFrame({"id": stack.test_ids})
    test[columns] = blend.test
    write_parquet(run_dir / "test_pred.parquet", test)
    write_json(run_dir / "scores.json", _scores(stack, blend, metric))
    model = dataclasses.replace(cfg.model, name="ensemble")
    write_text(run_dir / "config.toml", to_toml(cfg.replace(model=model)))
    names = [run.path.name for run in runs]
    corr = correlation(stack.oof)
    heatmap = save_heatmap(run_dir / "correlation.png", names, corr)
    write_submission(frame, sample_path, run_dir / "submission.csv")
    copy = write_submission(frame, sample_path, submissions_dir / f"{run_dir.name}.csv")
    summary = _summary(runs, stack, blend, metric, run_dir, copy, heatmap, corr)
    write_json(run_dir / "ensemble.json", {**summary, **_provenance()})
    return summary


def _scores(stack: Stack, blend: Blend, metric: Metric) -> dict:
    """scores.json per the contract, on the ensemble's (cross-validated when fitted) OOF."""
    folds = [
        metric(stack.labels[stack.folds == k], blend.oof[stack.folds == k])
        for k in np.unique(stack.folds)
    ]
    return {
        "metric": metric.name, "mode": metric.mode, "mean": float(np.mean(folds)),
        "std": float(np.std(folds)), "folds": folds, "oof": metric(stack.labels, blend.oof),
        "classes": stack.classes,
    }


def _summary(runs, stack, blend, metric, run_dir, submission, heatmap, corr) -> dict:
    members = [
        {"run_dir": str(run.path), "oof_score": metric(stack.labels, proba), "weight": float(w)}
        for run, proba, w in zip(runs, stack.oof, blend.weights)
    ]
    return {
        "run_dir": str(run_dir),
        "submission": str(submission),
        "run_submission": str(run_dir / "submission.csv"),
        "method": blend.method,
        "metric": metric.name,
        "mode": metric.mode,
        "oof_score": blend.score,
        "oof_score_in_sample": blend.score_in_sample,
        "oof_score_cv": blend.score_cv,
        "members": members,
        "weights": [float(w) for w in blend.weights],
        "weights_source": blend.weights_source,
        "fold_weights": {str(k): [float(x) for x in w] for k, w in blend.fold_weights.items()},
        "correlation": [[None if np.isnan(v) else float(v) for v in row] for row in corr],
        "heatmap": str(heatmap),
        "ensemble_json": str(run_dir / "ensemble.json"),
        "classes": stack.classes,
    }


def _provenance() -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""  # not a git checkout (a Kaggle kernel): recorded as unknown
    return {
        "git_commit": commit,
        "command": " ".join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
