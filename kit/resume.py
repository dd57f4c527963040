"""`train.py --resume RUN_DIR`: continue exactly the run that was started, or refuse.

A run folder is data (docs/architecture.md, "Reliability"): its config.toml decides what is
trained, never which code runs or which host is contacted. A resume therefore

- refuses every flag that would change what is trained (`--set`, `--seed`,
  `--deterministic`, `--profile`, `--dry-run`, `--demo`, `--refit`, `--seeds`, another
  `--comp`, a smaller `--fits`), naming the flag; a run begun with a refit (its
  config.toml's train.refit) finishes its refit models, keeping those already done;
- accepts and records what only changes where or how long it runs: `--device` (a GPU run
  may finish on another machine), `--max-time` (applied), a larger `--fits`, `--data`
  (checked later: the data must give the same split hash as folds.csv);
- takes a Dask scheduler's address from the command line only (`--dask-scheduler`);
- keeps run.json's first start and appends each resume to its "resumes" list.

    started = Resume.open(args)            # refuses, or the run's config and first start
    cfg = started.cfg
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kit.config import Config, apply_overrides
from kit.errors import ConfigError, KitError
from kit.run_folder import (
    check_hooks,
    check_library_versions,
    is_run_folder,
    provenance,
    read_config,
    read_run_info,
    write_run_info,
)

# (argparse dest, flag, value it has when not given)
REFUSED = (("overrides", "--set", []), ("seed", "--seed", None),
           ("deterministic", "--deterministic", False), ("profile", "--profile", None),
           ("dry_run", "--dry-run", False), ("demo", "--demo", False),
           ("refit", "--refit", None), ("seeds", "--seeds", None))


@dataclass(frozen=True)
class Resume:
    """A run folder being resumed: its resolved config, label and first start (run.json)."""

    run_dir: Path
    cfg: Config
    label: str  # "dryrun" / "demo" / ""
    started: dict  # run.json as the run's first start wrote it

    @classmethod
    def open(cls, args) -> Resume:
        run_dir = Path(args.resume)
        if not is_run_folder(run_dir):
            raise KitError(f"--resume {run_dir}: not a run folder (no config.toml); give a "
                           "folder under runs/<comp>/")
        refuse_flags(args, run_dir)
        cfg = read_config(run_dir)  # checks competition.slug is a name
        if args.comp and args.comp != cfg.competition.slug:
            raise ConfigError(f"--comp {args.comp} --resume {run_dir}: the run is of "
                              f"{cfg.competition.slug!r}; drop --comp (the run folder says it)")
        started = read_run_info(run_dir)
        # run.json's "fits" ("folds" in an older kit's)
        args.fits = _fits(args.fits, started.get("fits", started.get("folds")), cfg, run_dir)
        if args.data is None and started.get("data_dir"):
            args.data = Path(started["data_dir"])
        cfg = _where(cfg, args, run_dir)
        check_library_versions(run_dir)
        check_hooks(run_dir, started.get("hooks"), cfg.competition.slug)
        label = next((x for x in ("dryrun", "demo") if run_dir.name.endswith(f"_{x}")), "")
        return cls(run_dir, cfg, label, started)

    def record(self, argv: list[str] | None, **facts) -> None:
        """Append this resume (time, argv, commit, versions, device, ...) to run.json."""
        info = read_run_info(self.run_dir)
        info.setdefault("resumes", []).append({**provenance(argv), **facts})
        write_run_info(self.run_dir, info)


def refuse_flags(args, run_dir: Path) -> None:
    """A flag that changes what is trained has no place in a resume: one error naming it."""
    given = [flag for dest, flag, unset in REFUSED if getattr(args, dest) != unset]
    if given:
        raise ConfigError(f"--resume {run_dir} with {', '.join(given)}: a resume continues "
                          "the run exactly as it began (its config.toml); start a new run "
                          "for other settings, or drop " + ", ".join(given))


def _fits(asked: int | None, began: int | None, cfg: Config, run_dir: Path) -> int | None:
    """The fold fits to train: the first start's, or a larger --fits (more of the same run)."""
    if asked is None:
        return began
    total = cfg.cv.n_splits * cfg.cv.repeats
    if asked < (began or total):
        raise ConfigError(f"--resume {run_dir} --fits {asked}: the run began with "
                          f"{began or total} fold fits; give at least that many, or leave "
                          "--fits out")
    return asked


def _where(cfg: Config, args, run_dir: Path) -> Config:
    """--device, --max-time and the Dask scheduler's address: from the command line."""
    train = cfg.train
    scheduler = train.dask_scheduler
    if args.dask_scheduler is not None:
        scheduler = args.dask_scheduler
    elif scheduler and not scheduler.startswith("local:"):
        raise ConfigError(f"--resume {run_dir}: the run trained on the Dask scheduler "
                          f"{scheduler!r}; a run folder never decides which host is "
                          f"contacted: resume with --dask-scheduler {scheduler} (or another "
                          "address, or local:N)")
    return apply_overrides(cfg, {
        "train.device": args.device or train.device, "train.dask_scheduler": scheduler,
        "train.max_time": train.max_time if args.max_time is None else args.max_time},
        source=f"--resume {run_dir}")
