"""The study loop behind scripts/tune.py: open the study for its key, run trials here or in
--jobs processes (each trial a CV run on the shared folds), then best.toml and the plots.

    summary = run_study(args, command=[sys.executable, "scripts/tune.py"])
    if args.apply and summary.get("best"):
        train_main(apply_argv(args, summary["best"]))        # the script's --apply

`args` is scripts/tune.py's parsed command line; `command` starts a --jobs child (that
script, given worker_argv).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path


def run_study(args, command: list[str]) -> dict:
    """Open (or create) the study keyed on the data, config and space; run its trials; a
    parent (not a --jobs child) then writes and prints the best. Returns the summary."""
    from kit.config import load_config
    from kit.data.folder import resolve_data_dir
    from kit.errors import ConfigError
    from kit.io import write_json
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
        summary["jobs"] = run_jobs(args, [*command, *worker_argv(args, name, data_dir)])
    else:
        summary["trials_here"] = run_trials(args, cfg, space, data_dir, comp_runs, study,
                                            folder, seed)
    if args.worker:
        return summary
    return {**summary, **report(args, cfg, study, folder, best_trial(study))}


def run_trials(args, cfg, space, data_dir, comp_runs, study, folder, seed) -> int:
    """This process's trial loop; returns how many trials it ran."""
    from kit.run_folder import set_up_process
    from kit.runtime.threads import kit_jobs
    from kit.tuning.study import tune

    device, _ = set_up_process(cfg)  # the thread budget divided by KIT_JOBS in a --jobs child
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
    from kit.run_folder import new_trial_dir
    from kit.runtime.seed import seed_everything

    seed_everything(cfg.train.seed)
    trial_cfg = apply_overrides(cfg, {f"model.params.{model}.{k}": v
                                      for k, v in params.items()}, source="tune")

    def report_fold(fold: int, score: float) -> None:
        trial.report(score, fold)
        if trial.should_prune():
            raise optuna.TrialPruned()

    run_dir = new_trial_dir(folder, trial.number)
    trial.set_user_attr("run_dir", run_dir.name)
    opts = RunOptions(data_dir=data_dir, run_dir=run_dir, submissions_dir=Path("."),
                      device=device, submit=False, on_fold=report_fold,
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


def run_jobs(args, command: list[str]) -> list[dict]:
    """--jobs J: J processes of `command` on the study's storage (Optuna's multi-process
    sharing; the trial count is kept under tune's lock), each with KIT_JOBS=J so that the
    kit's thread rule gives it 1/J of the cores. Their lines are printed as `[job i] ...`."""
    from kit.errors import KitError

    env = {**os.environ, "KIT_JOBS": str(args.jobs), "PYTHONUNBUFFERED": "1"}
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
    """best.toml, the plots and the printed best."""
    from kit.io import write_text
    from kit.tuning.study import params_toml, save_plots

    out = {"best": best, "trials": len(study.trials)}
    if not best:
        return out
    out["best_toml"] = str(write_text(folder / "best.toml", params_toml(args.model,
                                                                        best["params"])))
    out["plots"] = save_plots(study, folder)
    print(f"best {cfg.competition.metric} {best['value']:.5f} (trial {best['number']}):")
    print(params_toml(args.model, best["params"]))
    return out


def apply_argv(args, best: dict) -> list[str]:
    """scripts/train.py's command line for a normal run with the best parameters (--apply)."""
    sets = [f"model.params.{args.model}.{k}={v!r}" if not isinstance(v, str)
            else f'model.params.{args.model}.{k}="{v}"' for k, v in best["params"].items()]
    extra = [a for pair in (("--set", s) for s in [*args.overrides, *sets]) for a in pair]
    paths = [a for flag, value in (("--data", args.data), ("--runs", args.runs),
                                   ("--submissions", args.submissions)) if value
             for a in (flag, str(value))]
    demo = ["--demo"] if args.demo else []
    return ["--comp", args.comp, "--set", f"model.name={args.model}", *extra, *paths, *demo]
