"""Tune a model's parameters with Optuna: each trial a CV run on the shared folds.

    python scripts/tune.py --comp house-prices-advanced-regression-techniques --model gbdt --trials 30
    python scripts/tune.py --comp titanic --model gbdt --trials 50 --apply   # then a normal run
    python scripts/tune.py --comp titanic --model lgbm --trials 40 --jobs 2  # 2 processes
    python scripts/tune.py --comp C --model gbdt --trials 200 --storage postgresql://u:p@host/db
    python scripts/tune.py --comp titanic --model gbdt --trials 5 --demo    # on synthetic data

A study is keyed on the training data's content, the competition's hooks, the metric, the
config and the search space (kit/tuning/key.py); its default name, <model>-<key>, carries the
key, so other data or another space starts another study. `--jobs J` runs J processes of
trials on the study's storage (Optuna shares it), each with KIT_JOBS=J so the kit's thread
rule gives each 1/J of the cores; several shells running the same command share the study
the same way. `--trials N` is N finished trials in total. A database URL (--storage) shares
the study across machines. The search space is [tune.<model>] in the competition's
config.toml over kit/tuning/study.py's defaults. Outputs in runs/<comp>/tune/<study>/: best.toml
(the best parameters as a [model.params] table), history.png and importance.png. The study
loop itself is kit/tuning/loop.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.io import write_json  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comp", required=True, help="competition folder name, e.g. titanic")
    p.add_argument("--model", required=True, help="the model kind to tune, e.g. gbdt")
    p.add_argument("--trials", type=int, required=True, help="finished trials in total")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--jobs", type=int, default=1, help="trial processes run in parallel on "
                   "this study, the cores divided among them (default 1)")
    p.add_argument("--storage", help="database URL for several machines (default: a journal "
                   "file under runs/<comp>/tune/)")
    p.add_argument("--study", help="study name (default: <model>-<key>, the key hashing the "
                   "data, config and search space)")
    p.add_argument("--apply", action="store_true", help="then a full CV run with the best "
                   "parameters, as scripts/train.py would make it")
    p.add_argument("--data", type=Path, help="data folder (default: data/<comp>)")
    p.add_argument("--demo", action="store_true", help="write synthetic demo data first and "
                   "tune on it (a study of its own: the key hashes the data)")
    p.add_argument("--runs", type=Path, help="runs root (default: runs/)")
    p.add_argument("--submissions", type=Path, help="submissions root (for --apply)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--summary-json", type=Path, help="write the result here")
    # a child of --jobs: its parent resolved the data and opened the study
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> dict:
    from kit.tuning.loop import apply_argv, run_study

    args = parser().parse_args(argv)
    summary = run_study(args, [sys.executable, str(Path(__file__).resolve())])  # + --jobs children
    if args.apply and summary.get("best"):  # a normal train.py run with the best parameters
        from kit.cli import train_main

        summary["applied"] = train_main(apply_argv(args, summary["best"]))
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
