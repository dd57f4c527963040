"""Tune a model's parameters with Optuna: each trial a CV run on the shared folds.

    python scripts/tune.py --comp house-prices-advanced-regression-techniques --model gbdt --trials 30
    python scripts/tune.py --comp titanic --model gbdt --trials 50 --apply   # then a normal run
    python scripts/tune.py --comp C --model gbdt --trials 200 --storage postgresql://u:p@host/db

Several processes on one machine share the default journal file (runs/<comp>/tune/<study>.journal):
start the same command in several shells. `--trials N` is N finished trials in total. A
database URL (--storage) shares the study across machines. The search space is
[tune.<model>] in the competition's config.toml over kit/tuning.py's defaults. Outputs in
runs/<comp>/tune/<study>/: best.toml (the best parameters as a [model.params] table),
history.png and importance.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.io import write_json, write_text  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comp", required=True, help="competition folder name, e.g. titanic")
    p.add_argument("--model", required=True, help="the model kind to tune, e.g. gbdt")
    p.add_argument("--trials", type=int, required=True, help="finished trials in total")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--storage", help="database URL for several machines (default: a journal "
                   "file under runs/<comp>/tune/)")
    p.add_argument("--study", help="study name (default: the model's name)")
    p.add_argument("--apply", action="store_true", help="then a full CV run with the best "
                   "parameters, as scripts/train.py would make it")
    p.add_argument("--data", type=Path, help="data folder (default: data/<comp>)")
    p.add_argument("--runs", type=Path, help="runs root (default: runs/)")
    p.add_argument("--submissions", type=Path, help="submissions root (for --apply)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--summary-json", type=Path, help="write the result here")
    args = p.parse_args(argv)
    summary = run_study(args)
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


def run_study(args) -> dict:
    from kit.cli import resolve_data_dir
    from kit.config import apply_overrides, load_config
    from kit.devices import pick_device
    from kit.errors import ConfigError
    from kit.paths import competition_dir, runs_root
    from kit.pipeline import RunOptions, run_cv
    from kit.seed import seed_everything
    from kit.threads import apply_thread_budget
    from kit.tuning import open_study, params_toml, save_plots, search_space, tune

    if args.trials < 1:
        raise ConfigError(f"--trials {args.trials}: give 1 or more")
    cfg = load_config(competition_dir(args.comp) / "config.toml",
                      overrides=[*args.overrides, f"model.name={args.model}"])
    space = search_space(cfg, args.model)
    data_dir = resolve_data_dir(cfg, args.data, False)
    comp_runs = (args.runs or runs_root()) / args.comp
    study, folder = open_study(cfg, comp_runs, args.study or args.model, args.storage)
    apply_thread_budget(cfg.train.num_threads)
    device = pick_device(cfg.train.device)

    def run_trial(params: dict, trial) -> float:
        import optuna

        seed_everything(cfg.train.seed)
        trial_cfg = apply_overrides(cfg, {f"model.params.{args.model}.{k}": v
                                          for k, v in params.items()}, source="tune")

        def report(fold: int, score: float) -> None:
            trial.report(score, fold)
            if trial.should_prune():
                raise optuna.TrialPruned()

        opts = RunOptions(data_dir=data_dir, run_dir=folder / f"trial_{trial.number:04d}",
                          submissions_dir=Path("."), device=device, submit=False,
                          on_fold=report, comp_runs=comp_runs)  # the shared folds
        opts.run_dir.mkdir(parents=True, exist_ok=True)
        return run_cv(trial_cfg, opts)["cv"]["mean"]

    best = tune(study, folder, space, run_trial, trials=args.trials, timeout=args.timeout)
    summary = {"study": study.study_name, "folder": str(folder), "best": best,
               "trials": len(study.trials)}
    if best:
        summary["best_toml"] = str(write_text(folder / "best.toml",
                                              params_toml(args.model, best["params"])))
        summary["plots"] = save_plots(study, folder)
        print(f"best {cfg.competition.metric} {best['value']:.5f} (trial {best['number']}):")
        print(params_toml(args.model, best["params"]))
    if args.apply and best:
        from kit.cli import train_main

        sets = [f"model.params.{args.model}.{k}={v!r}" if not isinstance(v, str)
                else f'model.params.{args.model}.{k}="{v}"' for k, v in best["params"].items()]
        extra = [a for pair in (("--set", s) for s in [*args.overrides, *sets]) for a in pair]
        paths = [a for flag, value in (("--data", args.data), ("--runs", args.runs),
                                       ("--submissions", args.submissions)) if value
                 for a in (flag, str(value))]
        summary["applied"] = train_main(["--comp", args.comp, "--set",
                                         f"model.name={args.model}", *extra, *paths])
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
