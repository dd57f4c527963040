"""Every run and ensemble of a competition as one table, best CV first; --lb adds Kaggle's scores.

    python scripts/runs.py --comp titanic
    python scripts/runs.py --comp titanic --lb     # + public / private LB, cv_vs_lb.png

Columns: run, started, model, features, split (the fold split's hash: rows with one hash
can be blended), metric, cv (mean over folds) and cv_std, oof, seconds, submission (the
file in submissions/<comp>/). --lb reads `kaggle competitions submissions --csv` and
matches submissions to runs by file name; without credentials it says how to set them and
still prints the local table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.errors import KaggleError  # noqa: E402
from kit.io import write_json  # noqa: E402
from kit.leaderboard import cv_vs_lb, join_lb, lb_scores, run_table  # noqa: E402
from kit.paths import competition_dir, runs_root, submissions_root  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True, help="competition slug, e.g. titanic")
    parser.add_argument("--lb", action="store_true", help="join your Kaggle submissions' scores")
    parser.add_argument("--runs", type=Path, help="runs root (default: runs/)")
    parser.add_argument("--submissions", type=Path, help="submissions root (default: submissions/)")
    parser.add_argument("--summary-json", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    competition_dir(args.comp)  # an unknown competition lists the known ones
    comp_runs = (args.runs or runs_root()) / args.comp
    table = run_table(comp_runs, (args.submissions or submissions_root()) / args.comp)
    summary: dict = {"runs": len(table)}
    if args.lb:
        try:
            table = join_lb(table, lb_scores(args.comp))
            plot = cv_vs_lb(table, comp_runs / "cv_vs_lb.png")
            summary["plot"] = str(plot) if plot else None
        except KaggleError as exc:  # no credentials, no network: the local table still helps
            print(f"leaderboard not read: {exc}", file=sys.stderr)
    if table.empty:
        print(f"no finished runs in {comp_runs}; train one with "
              f"`python scripts/train.py --comp {args.comp}`")
    else:
        with pd_options():
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if summary.get("plot"):
        print(f"CV against public LB: {summary['plot']}")
    summary["table"] = table.astype(object).where(table.notna(), None).to_dict("records")
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_colwidth", 40)


if __name__ == "__main__":
    sys.exit(run_script(main))
