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
(the best parameters as a [model.params] table), history.png and importance.png.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
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
    args = p.parse_args(argv)
    summary = run_study(args)
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


def run_study(args) -> dict:
    from kit.config import load_config
    from kit.data.folder import resolve_data_dir
    from kit.errors import ConfigError
    from kit.paths import competition_dir, runs_root
    from kit.tuning.key import read_known, study_name, study_parts, study_seed
    from kit.tuning.study import best_trial, open_study, search_space

    for flag, value in (("--trials", args.trials), ("--jobs", args.jobs)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: give 1 or more")
    cfg = load_config(competition_dir(args.comp) / "config.toml", demo=args.demo,
                      overrides=[*args.overrides, f"model.name={args.model}"])
    space = search_space(cfg, args.model)
    data_dir = resolve_data_dir(cfg, args.data, args.demo and not args.worker)
    comp_runs = (args.runs or runs_root()) / args.comp
    known_path = comp_runs / "tune" / "content_hashes.json"
    known = read_known(known_path)
    parts = study_parts(cfg, space, data_dir, competition_dir(args.comp), known)
    name = args.study or study_name(args.model, parts, demo=args.demo)
    seed = study_seed(cfg.train.seed)
    study, folder = open_study(cfg, comp_runs, name, args.storage, parts, seed=seed)
    write_json(known_path, known)  # once the study is open: a refusal leaves runs/ as it was
    if not args.worker:
        print(f"study {name}: {len(study.trials)} trials so far, their folders in {folder}")
    summary = {"study": study.study_name, "folder": str(folder), "key": parts["key"]}
    if args.jobs > 1:
        summary["jobs"] = run_jobs(args, name, data_dir)
    else:
        summary["trials_here"] = run_trials(args, cfg, space, data_dir, comp_runs, study,
                                            folder, seed)
    if args.worker:
        return summary
    return {**summary, **report(args, cfg, study, folder, best_trial(study))}


def run_trials(args, cfg, space, data_dir, comp_runs, study, folder, seed) -> int:
    """This process's trial loop; returns how many trials it ran."""
    from kit.runtime.devices import pick_device
    from kit.runtime.threads import apply_thread_budget, kit_jobs
    from kit.tuning.study import tune

    apply_thread_budget(cfg.train.num_threads)  # divided by KIT_JOBS in a --jobs child
    device = pick_device(cfg.train.device)
    ran = []

    def run_trial(params: dict, trial) -> float:
        ran.append(trial.number)
        return train_trial(args.model, cfg, params, trial, data_dir, comp_runs, folder, device)

    attrs = {"sampler_seed": seed, "jobs": kit_jobs()}
    tune(study, folder, space, run_trial, trials=args.trials, timeout=args.timeout,
         progress="lines" if args.worker else "bar", attrs=attrs)
    return len(ran)


def train_trial(model: str, cfg, params: dict, trial, data_dir: Path, comp_runs: Path,
                folder: Path, device) -> float:
    """One trial: a CV run with `params` in a new folder, each fold reported for pruning."""
    import optuna

    from kit.config import apply_overrides
    from kit.pipeline import RunOptions, run_cv
    from kit.runtime.seed import seed_everything
    from kit.tuning.study import new_trial_dir

    seed_everything(cfg.train.seed)
    trial_cfg = apply_overrides(cfg, {f"model.params.{model}.{k}": v
                                      for k, v in params.items()}, source="tune")

    def report(fold: int, score: float) -> None:
        trial.report(score, fold)
        if trial.should_prune():
            raise optuna.TrialPruned()

    run_dir = new_trial_dir(folder, trial.number)
    trial.set_user_attr("run_dir", run_dir.name)
    opts = RunOptions(data_dir=data_dir, run_dir=run_dir, submissions_dir=Path("."),
                      device=device, submit=False, on_fold=report,
                      comp_runs=comp_runs)  # the shared folds
    return run_cv(trial_cfg, opts)["cv"]["mean"]


def worker_argv(args, study: str, data_dir: Path) -> list[str]:
    """A --jobs child's command line: this study, the resolved data, no --apply."""
    argv = ["--comp", args.comp, "--model", args.model, "--trials", str(args.trials),
            "--study", study, "--data", str(data_dir), "--worker"]
    for flag, value in (("--timeout", args.timeout), ("--storage", args.storage),
                        ("--runs", args.runs)):
        if value is not None:
            argv += [flag, str(value)]
    for override in args.overrides:
        argv += ["--set", override]
    return argv + (["--demo"] if args.demo else [])


def run_jobs(args, study: str, data_dir: Path) -> list[dict]:
    """--jobs J: J processes of this script on the study's storage (Optuna's multi-process
    sharing; the trial count is kept under tune's lock), each with KIT_JOBS=J so that the
    kit's thread rule gives it 1/J of the cores. Their lines are printed as `[job i] ...`."""
    from kit.errors import KitError

    env = {**os.environ, "KIT_JOBS": str(args.jobs), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), *worker_argv(args, study, data_dir)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(args.jobs)]
    relays = [threading.Thread(target=_relay, args=(proc.stdout, f"[job {i}] "), daemon=True)
              for i, proc in enumerate(procs)]
    for relay in relays:
        relay.start()
    try:
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the children too; SIGTERM to us alone would not
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        raise
    for relay in relays:
        relay.join()
    failed = [(i, proc.returncode) for i, proc in enumerate(procs) if proc.returncode]
    if failed:
        i, code = failed[0]
        raise KitError(f"--jobs {args.jobs}: job {i} exited with status {code} (its error is "
                       "printed above); the study keeps every finished trial, run the command "
                       "again to go on")
    return [{"pid": proc.pid, "returncode": proc.returncode} for proc in procs]


def _relay(stream, prefix: str) -> None:
    for line in stream:
        print(prefix + line, end="", flush=True)


def report(args, cfg, study, folder: Path, best: dict) -> dict:
    """best.toml, the plots, the printed best; then the --apply run."""
    from kit.tuning.study import params_toml, save_plots

    out = {"best": best, "trials": len(study.trials)}
    if not best:
        return out
    out["best_toml"] = str(write_text(folder / "best.toml", params_toml(args.model,
                                                                        best["params"])))
    out["plots"] = save_plots(study, folder)
    print(f"best {cfg.competition.metric} {best['value']:.5f} (trial {best['number']}):")
    print(params_toml(args.model, best["params"]))
    if args.apply:
        out["applied"] = apply_best(args, best)
    return out


def apply_best(args, best: dict) -> dict:
    """A normal train.py run with the best parameters."""
    from kit.cli import train_main

    sets = [f"model.params.{args.model}.{k}={v!r}" if not isinstance(v, str)
            else f'model.params.{args.model}.{k}="{v}"' for k, v in best["params"].items()]
    extra = [a for pair in (("--set", s) for s in [*args.overrides, *sets]) for a in pair]
    paths = [a for flag, value in (("--data", args.data), ("--runs", args.runs),
                                   ("--submissions", args.submissions)) if value
             for a in (flag, str(value))]
    demo = ["--demo"] if args.demo else []
    return train_main(["--comp", args.comp, "--set", f"model.name={args.model}", *extra,
                       *paths, *demo])


if __name__ == "__main__":
    sys.exit(run_script(main))
