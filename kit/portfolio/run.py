"""run_portfolio: check the request, run the members, blend, report (scripts/portfolio.py).

Bad input stops before anything is written: a budget under MIN_BUDGET, `--seeds` below 1,
an unknown member, a competition no member applies to (an image task), a bad --set or
metric. A budget that no member fits is found by the probes: then the new portfolio's
folder (and the probes in it) is removed, nothing reaches submissions/, and the error names
the cheapest member's estimate.

    summary = run_portfolio(Options("titanic", budget=600, seeds=2, members=NAMES))
    summary = run_portfolio(None, resume=Path("runs/titanic/portfolios/20260101-120000"))
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

from kit.config import load_config
from kit.errors import ConfigError, KitError
from kit.metrics.competition import resolve_metric
from kit.paths import competition_dir, runs_root, submissions_root
from kit.portfolio.blending import blend_members
from kit.portfolio.loop import Portfolio, run_cost
from kit.portfolio.manifest import Manifest, Options
from kit.portfolio.members import MIN_BUDGET, REFIT_MODES, choose, not_applicable
from kit.portfolio.report import write_report


def run_portfolio(options: Options | None, *, resume: Path | None = None,
                  budget: float | None = None, log=print, started: float | None = None) -> dict:
    """Train the portfolio (new, or the one in `resume`), blend it, write the report.
    `started`: the time.monotonic() the budget counts from (default: the loop's start)."""
    manifest = Manifest.load(resume) if resume is not None else None
    if manifest and budget is not None:
        manifest.options = dataclasses.replace(manifest.options, budget=budget)
    options = check(manifest.options if manifest else options)
    cfg = competition_config(options)
    members = applying_members(options, cfg)
    manifest = manifest or Manifest.create(Path(options.runs), options)
    log(f"portfolio: {manifest.folder}  budget {options.budget:.0f} s  members "
        f"{', '.join(m.name for m in members)}  seeds {options.seeds}")
    try:
        Portfolio(manifest, cfg, members, log, started=started).run()
    except KeyboardInterrupt:
        log(f"interrupted: finished members are kept; continue with python "
            f"scripts/portfolio.py --resume {manifest.folder}")
        raise
    if not manifest.done():
        raise budget_error(manifest, remove=resume is None)
    manifest.blend = blend_members(manifest, log)
    manifest.submission, manifest.state = manifest.blend["submission"], "done"
    manifest.save()
    summary = write_report(manifest)
    log(f"report: {summary['report']}\nsubmission: {summary['submission']}")
    return summary


def applying_members(options: Options, cfg) -> tuple:
    """The chosen members; an error when none applies to the competition."""
    members = choose(",".join(options.members))
    if not any(not not_applicable(m, cfg) for m in members):
        raise ConfigError(f"--comp {options.comp}: no member applies "
                          f"({not_applicable(members[0], cfg)}); train it with "
                          "scripts/train.py and blend with scripts/ensemble.py")
    return members


def check(options: Options) -> Options:
    """The request's own checks; runs and submissions roots made absolute."""
    if not options.budget >= MIN_BUDGET:  # also refuses nan
        raise ConfigError(f"--time-budget {options.budget:g}: no member can finish in under "
                          f"{MIN_BUDGET:.0f} s (the imports and the blends' reserve); give "
                          f"--time-budget {MIN_BUDGET:.0f} or more (default 3600)")
    if options.refit not in REFIT_MODES:
        raise ConfigError(f"--refit {options.refit}: give one of {', '.join(REFIT_MODES)}")
    if options.seeds < 1:
        raise ConfigError(f"--seeds {options.seeds}: give 1 (one model seed per member) or "
                          "more")
    members = tuple(m.name for m in choose(",".join(options.members)))
    return dataclasses.replace(
        options, members=members, data=options.data and str(Path(options.data).resolve()),
        runs=str(Path(options.runs or runs_root()).resolve()),
        submissions=str(Path(options.submissions or submissions_root()).resolve()))


def competition_config(options: Options):
    """The competition's config as its members will resolve it (bad --set, metric: errors)."""
    cfg = load_config(competition_dir(options.comp) / "config.toml",
                      overrides=list(options.overrides), dry_run=options.dry_run,
                      demo=options.demo)
    resolve_metric(cfg)
    return cfg


def budget_error(manifest: Manifest, *, remove: bool) -> KitError:
    """No member finished: the error names the cheapest estimate and a budget that fits."""
    probed = [j for j in manifest.jobs if j.fold_seconds is not None]
    budget = manifest.options.budget
    if remove:
        shutil.rmtree(manifest.folder, ignore_errors=True)
    if not probed:
        reasons = "; ".join(f"{j.key}: {j.why}" for j in manifest.jobs if j.why)
        return KitError(f"no member finished ({reasons}); see the lines above")
    cheapest = min(probed, key=run_cost)
    need = run_cost(cheapest)
    refit = f", {cheapest.refit_seconds:.1f} s to refit" if cheapest.refit_seconds else ""
    return ConfigError(f"--time-budget {budget:g}: no member fits it; the cheapest, "
                       f"{cheapest.member}, needs about {need:.0f} s here ({cheapest.fits} fold "
                       f"fits of {cheapest.fold_seconds:.1f} s{refit}, "
                       f"{cheapest.start_seconds:.1f} s a call outside its fits: the data "
                       f"read, the predictions); give --time-budget {math.ceil(need * 1.5)} or more")
