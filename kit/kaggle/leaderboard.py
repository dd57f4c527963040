"""The runs of a competition as one table, optionally joined with the Kaggle leaderboard.

    table = run_table(runs_root / slug, submissions_root / slug)   # sorted by CV
    table = join_lb(table, lb_scores(slug))                          # public / private LB
    cv_vs_lb(table, "runs/titanic/cv_vs_lb.png")

A run's submission is matched to Kaggle's list by file name (`submissions/<slug>/<run>.csv`
is what scripts/submit.py uploads), so renaming a file before submitting loses the match.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import ConfigError, DataError, KaggleError
from kit.io import atomic_path

COLUMNS = ["run", "started", "model", "features", "split", "metric", "cv", "cv_std", "oof",
           "seconds", "submission", "demo"]


def run_table(comp_runs: Path, comp_submissions: Path | None = None) -> pd.DataFrame:
    """One row per finished run or ensemble under runs/<slug>/, best CV first; `demo` says
    whether it was trained on demo data (kit.submission.demo_trained)."""
    from kit.run_folder import finished_runs, is_run_folder, read_config, read_run_info, read_scores
    from kit.submission import demo_trained

    rows = []
    for folder in finished_runs(comp_runs):
        scores, info = read_scores(folder), read_run_info(folder)
        cfg = read_config(folder) if is_run_folder(folder) else None
        sub = (Path(comp_submissions) / f"{folder.name}.csv") if comp_submissions else None
        rows.append({
            "run": folder.name, "started": info.get("started", folder.name[:15]),
            "model": cfg.model.name if cfg else "", "features": cfg.features.name if cfg else "",
            "split": scores.get("split", ""), "metric": scores.get("metric", ""),
            "mode": _mode(scores, cfg, folder), "cv": scores.get("mean", np.nan),
            "cv_std": scores.get("std", np.nan), "oof": scores.get("oof", np.nan),
            "seconds": scores.get("seconds", np.nan),
            "submission": sub.name if sub is not None and sub.is_file() else "",
            "demo": demo_trained(folder)})
    table = pd.DataFrame(rows, columns=[*COLUMNS, "mode"])
    if table.empty:
        return table.drop(columns="mode")
    # best first within each metric, in that metric's own direction (a run scored under
    # another competition.metric is not ranked against these)
    key = table["cv"].where(table["mode"] == "min", -table["cv"])
    return table.assign(_key=key).sort_values(["metric", "_key"], kind="stable").drop(
        columns=["mode", "_key"]).reset_index(drop=True)


def _mode(scores: dict, cfg, folder: Path) -> str:
    """The run's direction: scores.json's "mode"; a run written before it was stored asks
    its metric (a built-in, or the competition's metric.py), never a guess."""
    if scores.get("mode") in ("max", "min"):
        return scores["mode"]
    from kit.metrics.competition import resolve_metric
    from kit.metrics.registry import get_metric
    from kit.run_folder import SCORES

    name = scores.get("metric", "")
    if cfg is not None and cfg.competition.metric == name:
        return resolve_metric(cfg).mode
    try:
        return get_metric(name).mode
    except ConfigError:
        raise DataError(f"{folder / SCORES} stores metric {name!r} without its mode and "
                        "no config.toml beside it names it; add \"mode\": \"max\" or \"min\" "
                        "there, or remove the run folder") from None


def lb_scores(slug: str) -> pd.DataFrame:
    """fileName, description, date, status, publicScore, privateScore of the user's Kaggle
    submissions (`kaggle competitions submissions --csv`, the newest 100)."""
    from kit.kaggle.client import run_cli

    output = run_cli(["competitions", "submissions", "-c", slug, "--csv", "--page-size", "100"],
                     context="list your submissions", slug=slug, echo=False)
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("ref,")), None)
    if start is None:
        if "No submissions found" in output or not output.strip():
            return pd.DataFrame(columns=["fileName", "publicScore", "privateScore"])
        raise KaggleError(f"unexpected output of `kaggle competitions submissions -c {slug} "
                          f"--csv`: {output[:200]!r}; update the kaggle package")
    frame = pd.read_csv(io.StringIO("\n".join(lines[start:])), dtype=str)
    for col in ("publicScore", "privateScore"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")  # "None" before scoring
    return frame


def join_lb(table: pd.DataFrame, lb: pd.DataFrame) -> pd.DataFrame:
    """The table with public_lb / private_lb of each run's submission (the newest when the
    same file was submitted twice)."""
    scores = lb.drop_duplicates("fileName").set_index("fileName")  # the CLI lists newest first
    out = table.copy()
    out["public_lb"] = out["submission"].map(scores["publicScore"])
    out["private_lb"] = out["submission"].map(scores["privateScore"])
    return out


def cv_vs_lb(table: pd.DataFrame, path: str | Path) -> Path | None:
    """Scatter of CV against public LB (with the y = x line): does the CV track the LB?"""
    scored = table.dropna(subset=["cv", "public_lb"])
    if scored.empty:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    ax.scatter(scored["cv"], scored["public_lb"], s=18)
    for _, row in scored.iterrows():
        ax.annotate(row["model"], (row["cv"], row["public_lb"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    low = float(np.nanmin([scored["cv"].min(), scored["public_lb"].min()]))
    high = float(np.nanmax([scored["cv"].max(), scored["public_lb"].max()]))
    ax.plot([low, high], [low, high], color="gray", lw=1, ls=":", label="LB = CV")
    ax.set_xlabel(f"CV {table['metric'].iloc[0]}")
    ax.set_ylabel("public LB")
    ax.legend(loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)
