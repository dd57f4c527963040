"""Every run and ensemble of a competition as one table, best CV first; --lb adds Kaggle's scores.

    python scripts/runs.py --comp titanic
    python scripts/runs.py --comp titanic --lb     # + public / private LB, cv_vs_lb.png
    python scripts/runs.py --comp titanic --demo   # the runs trained on demo data

Columns: run, started, model, features, split (the fold split's hash: rows with one hash
can be blended), metric, cv (mean over folds) and cv_std, oof, seconds, submission (the
file in submissions/<comp>/). Runs trained on demo data (and ensembles of them) are
listed with --demo only: their scores say nothing about the competition. --lb reads
`kaggle competitions submissions --csv` and matches submissions to runs by file name;
without credentials it says how to set them and still prints the local table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.errors import ConfigError, KaggleError  # noqa: E402
from kit.io import write_json  # noqa: E402
from kit.paths import competition_dir, runs_root, submissions_root  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True, help="competition slug, e.g. titanic")
    parser.add_argument("--lb", action="store_true", help="join your Kaggle submissions' scores")
    parser.add_argument("--demo", action="store_true",
                        help="list the runs trained on demo data (hidden otherwise)")
    parser.add_argument("--runs", type=Path, help="runs root (default: runs/)")
    parser.add_argument("--submissions", type=Path, help="submissions root (default: submissions/)")
    parser.add_argument("--summary-json", type=Path, help="write the table here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.demo and args.lb:
        raise ConfigError("--lb joins the scores of files submitted to Kaggle, and demo-trained "
                          "runs are never submitted (submit.py refuses them); drop --demo or --lb")
    competition_dir(args.comp)  # an unknown competition lists the known ones
    from kit.kaggle.leaderboard import cv_vs_lb, join_lb, lb_scores, run_table

    comp_runs = (args.runs or runs_root()) / args.comp
    every = run_table(comp_runs, (args.submissions or submissions_root()) / args.comp)
    table = every[every["demo"] == args.demo].drop(columns="demo").reset_index(drop=True)
    summary: dict = {"runs": len(table), "hidden": len(every) - len(table)}
    if args.lb:
        try:
            table = join_lb(table, lb_scores(args.comp))
            plot = cv_vs_lb(table, comp_runs / "cv_vs_lb.png")
            summary["plot"] = str(plot) if plot else None
        except KaggleError as exc:  # no credentials, no network: the local table still helps
            print(f"leaderboard not read: {exc}", file=sys.stderr)
    if table.empty:
        print(f"no finished {'demo-trained ' if args.demo else ''}runs in {comp_runs}; "
              f"train one with `{train_command(args.comp, args.demo)}`")
    else:
        with pd_options():
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if summary["hidden"]:
        other = "trained on real data" if args.demo else "trained on demo data"
        flag = "" if args.demo else " --demo"
        print(f"{summary['hidden']} runs {other} not shown: "
              f"`python scripts/runs.py --comp {args.comp}{flag}` lists them")
    if summary.get("plot"):
        print(f"CV against public LB: {summary['plot']}")
    summary["table"] = table.astype(object).where(table.notna(), None).to_dict("records")
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


def train_command(slug: str, demo: bool) -> str:
    return f"python scripts/train.py --comp {slug}" + (" --demo" if demo else "")


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_colwidth", 40)


if __name__ == "__main__":
    sys.exit(run_script(main))
