"""The portfolio folder, runs/<slug>/portfolios/<stamp>/: manifest.json maps each job (a member
and a seed) to its run folder and state, with the options and the seconds spent so far.

Every change is written at once (kit.io.write_json: a kill never leaves half a manifest), so
`--resume PORTFOLIO_DIR` finds the jobs as the killed process last saw them.

    manifest = Manifest.create(runs_root, options)     # or Manifest.load(folder)
    job = manifest.job("lgbm", 0); job.state = "done"; manifest.save()
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from kit.errors import ConfigError
from kit.io import write_json
from kit.run_folder import new_run_dir

# pending -> probing (2 fold fits) -> training (the rest) -> done; or skipped (budget, may be
# retried by a resume), failed (train.py refused or crashed), not applicable
STATES = ("pending", "probing", "training", "done", "skipped", "failed", "not applicable")


@dataclass(frozen=True)
class Options:
    """What the portfolio was asked for; kept in the manifest, a resume reuses them."""

    comp: str
    budget: float  # seconds of wall time for the whole portfolio
    seeds: int  # model seeds per seeded member (extra ones only while the budget allows)
    members: tuple[str, ...]
    data: str | None = None
    runs: str | None = None  # runs root (default kit.paths.runs_root())
    submissions: str | None = None  # submissions root
    demo: bool = False
    dry_run: bool = False
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, given to every member
    refit: str = "off"  # train.py --refit for every member: off, only or with_folds


@dataclass
class Job:
    """One train.py run of the portfolio: a member at one seed."""

    member: str
    seed_index: int = 0  # 0: the config's train.seed; i: --seed train.seed + i
    state: str = "pending"
    run_dir: str = ""
    why: str = ""  # why skipped / failed / not applicable
    cv: float | None = None  # scores.json mean over the fold fits
    std: float | None = None
    seconds: float = 0.0  # wall seconds of its train.py calls, all tries together
    fits: int | None = None  # fold fits of the whole run (n_splits x repeats)
    fold_seconds: float | None = None  # a fold fit with its scoring and files (the probe's 2nd)
    start_seconds: float | None = None  # the probe call's seconds besides its fits and refit
    refit_seconds: float | None = None  # the probe's refit on all rows (none: 0)

    @property
    def key(self) -> str:
        return f"{self.member}_s{self.seed_index}"


@dataclass
class Manifest:
    folder: Path
    options: Options
    jobs: list[Job] = field(default_factory=list)
    spent: float = 0.0  # wall seconds of all sessions before this one's last save
    blend: dict | None = None
    submission: str = ""
    state: str = "running"  # or "done"

    @property
    def path(self) -> Path:
        return self.folder / "manifest.json"

    @classmethod
    def create(cls, runs_root: Path, options: Options) -> Manifest:
        label = "dryrun" if options.dry_run else ("demo" if options.demo else "")
        folder = new_run_dir(runs_root / options.comp / "portfolios", label)
        manifest = cls(folder, options, [Job(m) for m in options.members])
        manifest.save()
        return manifest

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = Path(folder) / "manifest.json"
        if not path.is_file():
            raise ConfigError(f"--resume {folder}: no manifest.json there; give a folder under "
                              "runs/<slug>/portfolios/")
        raw = json.loads(path.read_text(encoding="utf-8"))
        options = Options(**{**raw["options"], "members": tuple(raw["options"]["members"]),
                             "overrides": tuple(raw["options"]["overrides"])})
        return cls(Path(folder), options, [Job(**job) for job in raw["jobs"]], raw["spent"],
                   raw.get("blend"), raw.get("submission", ""), raw.get("state", "running"))

    def save(self) -> None:
        write_json(self.path, {
            "options": dataclasses.asdict(self.options),
            "jobs": [dataclasses.asdict(job) for job in self.jobs], "spent": self.spent,
            "blend": self.blend, "submission": self.submission, "state": self.state})

    def job(self, member: str, seed_index: int) -> Job:
        """The job of `member` at `seed_index`, added (pending) when new."""
        for job in self.jobs:
            if job.member == member and job.seed_index == seed_index:
                return job
        self.jobs.append(Job(member, seed_index))
        return self.jobs[-1]

    def done(self) -> list[Job]:
        return [job for job in self.jobs if job.state == "done"]
