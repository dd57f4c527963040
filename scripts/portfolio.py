#!/usr/bin/env python
"""A portfolio of models on the competition's split, blended into one checked submission.

    python scripts/portfolio.py --comp titanic                      # the whole portfolio, 1 h
    python scripts/portfolio.py --comp titanic --time-budget 600 --members lgbm,xgb,catboost
    python scripts/portfolio.py --comp titanic --demo --dry-run     # every stage, in seconds
    python scripts/portfolio.py --resume runs/titanic/portfolios/20260101-120000

Each member is an ordinary train.py run, called in this process (one interpreter, imports
paid once: kit/portfolio/calls.py), two fold fits first, timed (the rest only when
its estimate fits the budget left), extra seeds where the budget allows, then hill climbing
(stacking when its cross-validated score wins). The portfolio's folder
(runs/<slug>/portfolios/<stamp>/) holds manifest.json, report.md and the members'
submissions; submissions/<slug>/ gets the blend's. Members and the budget rule:
kit/portfolio/members.py and kit/portfolio/loop.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

STARTED = time.monotonic()  # the budget counts this process's own imports too

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.errors import ConfigError  # noqa: E402
from kit.io import write_json  # noqa: E402

DEFAULT_SEEDS = 3
# scripts/bench_refit.py (docs/benchmarks.md, Refit on all rows): refit tied on Titanic,
# gained 1.0 standard error on House Prices and lost 2.6 on the synthetic table; one
# default for every competition: off
DEFAULT_REFIT = "off"

# flags a resume takes from the manifest: (argparse dest, flag, value when not given)
FIXED = (("comp", "--comp", None), ("seeds", "--seeds", None), ("members", "--members", None),
         ("data", "--data", None), ("runs", "--runs", None),
         ("submissions", "--submissions", None), ("demo", "--demo", False),
         ("dry_run", "--dry-run", False), ("overrides", "--set", []), ("refit", "--refit", None))


def parser() -> argparse.ArgumentParser:
    from kit.portfolio.members import DEFAULT_BUDGET, NAMES, REFIT_MODES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comp", help="competition slug, e.g. titanic")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help=f"wall seconds for the whole portfolio (default {DEFAULT_BUDGET:.0f}: "
                   "fits a Kaggle kernel's CPU session; members that would not fit are skipped)")
    p.add_argument("--seeds", type=int, help=f"model seeds per member where the budget allows "
                   f"(default {DEFAULT_SEEDS})")
    p.add_argument("--members", help=f"comma-separated subset, in the portfolio's order "
                   f"(default all: {','.join(NAMES)})")
    p.add_argument("--refit", choices=REFIT_MODES,
                   help=f"train.py --refit for every member (default {DEFAULT_REFIT}): only / "
                   "with_folds blend the members' refit test predictions with weights fitted on "
                   "their fold models' OOF")
    p.add_argument("--data", type=Path, help="data folder (default: data/<comp>)")
    p.add_argument("--runs", type=Path, help="runs root (default: runs/)")
    p.add_argument("--submissions", type=Path, help="submissions root (default: submissions/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override given to every member, e.g. --set train.epochs=5")
    p.add_argument("--demo", action="store_true", help="synthetic demo data (train.py --demo)")
    p.add_argument("--dry-run", action="store_true",
                   help="every member in its smallest form (train.py --dry-run)")
    p.add_argument("--resume", type=Path, metavar="PORTFOLIO_DIR",
                   help="continue a portfolio: finished members kept, unfinished runs resumed, "
                   "skipped ones tried again (a --time-budget given replaces the old one)")
    p.add_argument("--summary-json", type=Path, help="write the portfolio's summary here")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    from kit.portfolio.manifest import Options
    from kit.portfolio.members import DEFAULT_BUDGET, NAMES
    from kit.portfolio.run import run_portfolio

    options = None
    if args.resume:
        given = [flag for dest, flag, unset in FIXED if getattr(args, dest) != unset]
        if given:
            raise ConfigError(f"--resume {args.resume} with {', '.join(given)}: a resume "
                              "continues the portfolio as it began (its manifest.json); drop "
                              f"{', '.join(given)} (only --time-budget may change)")
    elif not args.comp:
        raise ConfigError("--comp is required (e.g. --comp titanic), or --resume PORTFOLIO_DIR")
    else:
        options = Options(
            args.comp, DEFAULT_BUDGET if args.time_budget is None else args.time_budget,
            DEFAULT_SEEDS if args.seeds is None else args.seeds,
            tuple(args.members.split(",")) if args.members else NAMES,
            str(args.data) if args.data else None, args.runs and str(args.runs),
            args.submissions and str(args.submissions), args.demo, args.dry_run,
            tuple(args.overrides), DEFAULT_REFIT if args.refit is None else args.refit)
    try:
        summary = run_portfolio(options, resume=args.resume, budget=args.time_budget,
                                started=STARTED)
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # the resume command is printed already
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
