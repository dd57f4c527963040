"""Command-line entry points shared by scripts/ (and the Kaggle kernel script).

    python scripts/train.py --comp titanic [--data DIR] [--runs DIR] [--submissions DIR]
        [--summary-json FILE] [--set k=v ...] [--fits K] [--demo] [--dry-run] [--seed N]
        [--device auto|cpu|cuda|mps] [--resume RUN_DIR] [--max-time SECONDS] [--deterministic]
        [--refit [only|with_folds]] [--seeds N]
"""

from __future__ import annotations

import argparse
import functools
import platform
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from kit.config import Config, load_config, profile_section
from kit.data.folder import resolve_data_dir
from kit.errors import ConfigError, KitError
from kit.hooks import hook_hashes
from kit.io import write_json
from kit.paths import competition_dir, data_root, runs_root, submissions_root

# Light imports only up here: scripts answer --help and argument errors through this module,
# so pandas (kit.data, kit.run_folder) and torch are imported inside the functions that need them.


def _terminate(signum, frame):  # SIGTERM (preemption, `kill`, Kaggle's stop): as Ctrl-C
    raise KeyboardInterrupt


def run_script(main: Callable[[list[str] | None], dict], argv: list[str] | None = None) -> int:
    """Run a script's main; a KitError is one line on stderr and exit status 2.

    Ctrl-C and SIGTERM stop cleanly with status 130: every file is written atomically, so
    finished folds and the last completed epoch's `last.pt` are intact for --resume.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    warnings.formatwarning = _one_line_warning
    try:
        main(argv)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished folds and last.pt are kept; continue with --resume RUN_DIR",
              file=sys.stderr)
        return 130
    return 0


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """The kit's warnings read like its errors; other libraries' keep where they came from."""
    if category is UserWarning and filename.startswith(str(Path(__file__).parent)):
        return f"warning: {message}\n"
    return f"{filename}:{lineno}: {category.__name__}: {message}\n"


def refuse_renamed_flags(args) -> None:
    """A flag an older kit read, refused with its new name (hidden from --help)."""
    if getattr(args, "folds", None) is not None:
        raise ConfigError(f"--folds is renamed --fits (train only the first K fold fits; "
                          f"\"folds\" is the split itself): write --fits {args.folds}")


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Cross-validated training -> OOF scores -> submission")
    p.add_argument("--comp", help="competition folder name (= Kaggle slug), e.g. titanic")
    p.add_argument("--data", type=Path, help="data folder (default: data/<comp>)")
    p.add_argument("--runs", type=Path, help="runs root (default: runs/)")
    p.add_argument("--submissions", type=Path, help="submissions root (default: submissions/)")
    p.add_argument("--summary-json", type=Path, help="write a JSON summary of the run here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--fits", type=int, metavar="K",
                   help="train only the first K fold fits (of cv.repeats x cv.n_splits; a "
                   "quick run)")
    p.add_argument("--folds", type=int, help=argparse.SUPPRESS)  # renamed --fits: refused
    p.add_argument("--demo", action="store_true", help="write synthetic demo data first, train on it")
    p.add_argument("--dry-run", action="store_true",
                   help="smallest model, few steps, every stage for real (config [dry_run])")
    p.add_argument("--seed", type=int, help="model seed: weights, batch order (train.seed); the "
                   "folds keep cv.seed, so runs with other seeds can be blended")
    p.add_argument("--device", help="auto, cpu, cuda or mps (train.device)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--max-time", type=float, metavar="SECONDS",
                   help="stop cleanly before this many seconds and submit the finished folds")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms")
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (track.wandb)")
    p.add_argument("--profile", choices=("auto", "none"),
                   help="auto (default): apply the config's [cpu] / [gpu] / [mps] section for "
                   "the device the run uses; none: the config as it is")
    p.add_argument("--refit", nargs="?", const="only", choices=("only", "with_folds"),
                   help="after the CV, train once more on all rows for the folds' length "
                   "(train.refit): submit the refit models' mean (only, the default) or half "
                   "that and half the folds' mean (with_folds)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="refit models with model seeds train.seed + 0 .. N-1 (train.refit_seeds)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="xgb on Dask: local:N or a scheduler address (train.dask_scheduler); "
                   "a resumed Dask run names its scheduler here")
    return p


def _overrides(args) -> list[str]:
    extra = list(args.overrides)
    for flag, key in ((args.seed, "train.seed"), (args.device, "train.device"),
                      (args.max_time, "train.max_time"),
                      (args.dask_scheduler, "train.dask_scheduler"),
                      (args.refit, "train.refit"), (args.seeds, "train.refit_seeds")):
        if flag is not None:
            extra.append(f"{key}={flag}")
    if args.deterministic:
        extra.append("train.deterministic=true")
    if args.wandb:
        extra.append("track.wandb=true")
    return extra


def _load_with_profile(args) -> Config:
    """The config with the profile of the device it will run on ([cpu], [gpu], [mps])."""
    from kit.runtime.devices import pick_device

    path = competition_dir(args.comp) / "config.toml"
    kwargs = {"overrides": _overrides(args), "dry_run": args.dry_run, "demo": args.demo}
    cfg = load_config(path, **kwargs)
    if args.profile == "none":
        return cfg
    kind = pick_device(cfg.train.device).type
    profile = {"cuda": "gpu"}.get(kind, kind)
    section = profile_section(cfg, profile)
    if not section:
        return cfg
    print(f"device profile [{section}] from config.toml: "
          + ", ".join(f"{k}={v}" for k, v in getattr(cfg, section).items()))
    return load_config(path, profile=profile, **kwargs)


def train_main(argv: list[str] | None = None) -> dict:
    args = train_parser().parse_args(argv)  # --help and bad flags answer before torch loads
    refuse_renamed_flags(args)
    from kit.pipeline import RunOptions, run_cv  # torch and the rest before the thread budget
    from kit.pipeline.refit import check_refit
    from kit.pipeline.targets import check_several, several
    from kit.runtime import distributed as dist

    resume, cfg, label = _open_run(args)
    place, data_dir, device, facts = _set_up(cfg, args)
    check_refit(cfg, data_dir)  # before the run folder: a refused refit leaves nothing
    if several(cfg):  # several targets: the sample and what they cannot do, checked now
        check_several(cfg, data_dir)
    if resume:
        run_dir = resume.run_dir
    else:  # inputs checked: rank 0 makes the run's own folder, the other ranks take its name
        run_dir = _start_run(args, cfg, label, argv, facts) if place.main else None
        run_dir = Path(dist.broadcast(str(run_dir)))
    if place.main:
        ranks = f" x {place.world_size} ranks (DDP)" if place.world_size > 1 else ""
        print(f"run: {run_dir}  device: {device}{ranks}  model: {cfg.model.name}"
              + ("  resumed" if resume else "")
              + ("  deterministic: on" if cfg.train.deterministic else ""))
    record = None  # a resume is recorded in run.json once its inputs and split are checked
    if resume:
        record = functools.partial(resume.record, argv, **facts,
                                   libraries=_library_versions(cfg))
    opts = RunOptions(data_dir=data_dir, run_dir=run_dir,
                      submissions_dir=args.submissions or submissions_root(), device=device,
                      first_fits=facts["fits"], resume=resume is not None,
                      max_time=cfg.train.max_time or None, label=label, on_start=record)
    try:
        summary = run_cv(cfg, opts)
    except BaseException:
        if place.main and resume is None:
            _drop_if_empty(run_dir)
        raise
    finally:
        dist.cleanup()
    return _finish(args, resume, summary) if place.main else summary


def _open_run(args):
    """(the Resume or None, the config, the run's label): a resumed run's own, or the
    competition's config with its device profile; the metric is found before any folder."""
    from kit.metrics.competition import resolve_metric
    from kit.resume import Resume

    resume = Resume.open(args) if args.resume else None
    if resume is None and not args.comp:
        raise KitError("--comp is required (e.g. --comp titanic), or --resume RUN_DIR")
    cfg = resume.cfg if resume else _load_with_profile(args)
    label = resume.label if resume else \
        ("dryrun" if args.dry_run else ("demo" if args.demo else ""))
    resolve_metric(cfg)  # built-in or competitions/<slug>/metric.py: before any folder is made
    return resume, cfg, label


def _set_up(cfg: Config, args):
    """The process the run trains in (determinism, DDP place, data folder, then
    kit.run_folder.set_up_process): (place, data folder, device, the facts run.json keeps)."""
    import torch

    from kit.run_folder import set_up_process
    from kit.runtime.seed import set_deterministic

    set_deterministic(cfg.train.deterministic)  # before CUDA starts (CUBLAS_WORKSPACE_CONFIG)
    place, data_dir = _where(cfg, args)
    device, threads = set_up_process(cfg)
    if device.type == "cuda" and place.world_size > 1:
        device = torch.device("cuda", place.local_rank)
    fits = 1 if args.dry_run and not args.fits else args.fits
    facts = {"device": str(device), "world_size": place.world_size, "fits": fits,
             "data_dir": str(data_dir), "threads": threads, "max_time": cfg.train.max_time,
             "python": platform.python_version(), "torch": torch.__version__}
    return place, data_dir, device, facts


def _finish(args, resume, summary: dict) -> dict:
    """Rank 0's end: the demo mark and the --summary-json file."""
    summary["demo"] = bool(args.demo or (resume and resume.started.get("demo")))
    if summary["demo"]:
        print("(trained on DEMO DATA: the scores say the pipeline works, nothing about Kaggle)")
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


def _where(cfg: Config, args):
    """(DDP place, data folder): rank 0 writes demo data or unzips first."""
    from kit.runtime import distributed as dist

    place = dist.init(cfg.train.device)
    if place.main:
        data_dir = resolve_data_dir(cfg, args.data, args.demo)
    dist.barrier()  # demo data written / archive extracted once, by rank 0
    if not place.main:
        data_dir = resolve_data_dir(cfg, args.data, False) if not args.demo else \
            (args.data or data_root() / f"{cfg.competition.slug}-demo")
    return place, data_dir


def _library_versions(cfg: Config) -> dict:
    from kit.models.registry import library_versions

    return library_versions(cfg.model.name)


def _start_run(args, cfg: Config, label: str, argv, facts: dict) -> Path:
    """A new run folder of its own with its config.toml and run.json (kit.run_folder.start_run)."""
    from kit.run_folder import provenance, start_run

    return start_run((args.runs or runs_root()) / cfg.competition.slug, cfg,
                     (cfg.model.name, cfg.features.name, label), {
        **provenance(argv), "seed": cfg.train.seed, "cv_seed": cfg.cv.seed,
        "deterministic": cfg.train.deterministic, "demo": args.demo, **facts,
        "hooks": hook_hashes(competition_dir(cfg.competition.slug)),
        "libraries": _library_versions(cfg)})


def _drop_if_empty(run_dir: Path) -> None:
    """A run that stopped before any fold left something to resume leaves no folder."""
    from kit.run_folder import has_progress

    if has_progress(run_dir):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"removed {run_dir}: the run stopped before its first fold (nothing to resume)")
