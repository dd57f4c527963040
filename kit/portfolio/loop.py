"""The portfolio's loop: each member probed, estimated, continued or skipped; extra seeds.

A member's first run trains its first two fold fits only (`train.py --fits 2`, the probe);
no probe starts when the time left is less than a whole run of the cheapest member probed so
far (a probe that cannot be followed by its run only spends the budget). Its cost is then
estimated (run_cost, the one formula): the fold rate (the seconds from the probe's first
`fold k` line to its second: a fit with its scoring, plots and files; without two lines,
the probe's own seconds per fit) times the fold fits still to train, its refit, plus what
the probe's call spent besides (its wall time less its fits and refit at that rate: the
config, the data read, the first fold's first use of a library, the predictions and the
submission). train.py runs in this process (kit.portfolio.calls), so no interpreter starts.
When the estimate fits the budget left (less BLEND_RESERVE for the two blends), the same run
continues (`train.py --resume RUN_DIR --fits <all>`); otherwise the member is skipped with a
line naming the estimate and the time left, and its probe folder is removed: a run with
folds missing is never blended (ensemble.py refuses it too). A probe that trained every fit
(a --dry-run) is the member's run. Every member trains on the competition's stored split
(all members share the config's [cv]), so all can be blended.

With `--refit` every run also trains its refit on all rows (train.py --refit): the probe's
refit is timed; the run's continuation (--resume) trains it again when all its folds give
another length (kit/pipeline/refit.py); the estimates count a refit per run.

Extra seeds (`--seeds N`) come after every member's first run, round by round in the
members' order: seed i of a member is a new run with `--seed train.seed + i`, started when
the member's measured cost fits what is left. A kind whose fit ignores the seed (linear)
gets one run.

    Portfolio(manifest, cfg, members, log=print).run()
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from kit.portfolio.calls import Outcome, call, import_once
from kit.portfolio.manifest import Job, Manifest
from kit.portfolio.members import Member, not_applicable
from kit.run_folder import is_run_folder, read_config, read_run_info, read_scores

FINAL = ("done", "failed", "not applicable")
# The probe's fold fits: the second one's time (from its `fold k` line to the next) is the
# rate, free of the first fold's costs paid once a call (the data read, a library's first
# use: a Titanic linear fit took 2.2 s first and 0.1 s after, measured in this process)
PROBE_FITS = 2
# Seconds kept for the two blends (ensemble.py --method hill, then stack, in this process)
# and the report: 0.5 s each on the Titanic demo with two members (measured); more members
# and rows cost more
BLEND_RESERVE = 3.0


class Portfolio:
    """Runs a manifest's jobs within its budget; holds the clock and the last probe's cost."""

    def __init__(self, manifest: Manifest, cfg, members: tuple[Member, ...], log=print, *,
                 started: float | None = None):
        """`started`: the time.monotonic() this session's clock counts from (the script's
        start, so its own imports are spent budget too); default now."""
        self.manifest, self.cfg, self.members, self.log = manifest, cfg, members, log
        self.options = manifest.options
        self.start = time.monotonic() if started is None else started
        self.spent_before = manifest.spent
        self.last_probe = 0.0  # wall seconds of the latest probe: the next one costs about as much
        self.metric = ""  # the members' metric, from their scores.json

    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.start

    def left(self) -> float:
        """Seconds of the budget left for members: the blends' reserve kept."""
        return self.options.budget - self.spent() - BLEND_RESERVE

    def save(self) -> None:
        self.manifest.spent = self.spent()
        self.manifest.save()

    def run(self) -> None:
        import_once()
        for number, member in enumerate(self.members, 1):
            job = self.manifest.job(member.name, 0)
            self.step(member, job)
            self.progress(job, f"[{number}/{len(self.members)}]",
                          len(self.members) - number)
        for index in range(1, self.options.seeds):
            for member in self.members:
                if member.seeded and self.manifest.job(member.name, 0).state == "done":
                    job = self.manifest.job(member.name, index)
                    self.step(member, job)
                    self.progress(job, f"[seed {index}]", 0)

    def step(self, member: Member, job: Job) -> None:
        """Bring one job as far as the budget allows: kept, continued, probed or skipped."""
        if job.state in FINAL:
            self.log(f"{job.key}: {job.state} in an earlier session, kept")
            if job.state == "done" and not self.metric:
                self.metric = read_scores(Path(job.run_dir)).get("metric", "")
            return
        why = not_applicable(member, self.cfg)
        if why:
            return self.close(job, "not applicable", why)
        if job.state == "training" and job.run_dir and Path(job.run_dir).is_dir():
            return self.finish_run(job)  # a killed run: its finished folds are kept
        self.drop_run(job)  # a killed probe, or a skipped job's leftovers
        if job.seed_index:
            return self.seed_run(member, job)
        if self.probe(member, job):
            self.finish_run(job)

    def probe(self, member: Member, job: Job) -> bool:
        """Train the first PROBE_FITS fold fits; True when the rest of the run fits the budget
        left (False: skipped, failed, or the probe was the whole run)."""
        left, floor = self.left(), self.cheapest_run()
        if left <= self.last_probe:
            self.close(job, "skipped", f"{left:.0f} s of the budget left, less than a probe "
                       f"(the last one took {self.last_probe:.0f} s)")
            return False
        if floor is not None and left < floor[0]:
            self.close(job, "skipped", f"{left:.0f} s of the budget left, less than a whole "
                       f"run at the cheapest rate probed so far ({floor[1]}: {floor[0]:.0f} s)")
            return False
        job.state = "probing"
        out = self.train(job, self.new_run_args(member, job, folds=PROBE_FITS), "probe")
        if out.rc:
            return self.failed(job, out)
        self.last_probe = out.wall
        job.fits = fold_fits(job.run_dir)
        trained = len(read_scores(Path(job.run_dir)).get("fold_scores", []))
        if trained < min(PROBE_FITS, job.fits):
            self.close(job, "skipped", f"the budget ran out during its probe ({trained} fold fit "
                       f"in {out.wall:.0f} s)")
            self.drop_run(job)
            return False
        job.refit_seconds = refit_seconds(out.summary)
        own = float(out.summary.get("seconds", out.wall)) - job.refit_seconds
        job.fold_seconds = fold_rate(out.fold_times) or own / trained
        job.start_seconds = max(out.wall - job.fold_seconds * trained - job.refit_seconds, 0.0)
        if self.options.refit != "off" and not job.refit_seconds:  # no refit timed: a fold's
            job.refit_seconds = job.fold_seconds
        if job.fits <= trained:  # the probe was the whole run
            self.record_scores(job)
            return False
        rest = run_cost(job, job.fits - trained)
        if rest > self.left():
            refit = f" + {job.refit_seconds:.1f} s to refit" if job.refit_seconds else ""
            self.close(job, "skipped", f"estimated {rest:.0f} s for its other "
                       f"{job.fits - trained} "
                       f"fold fits ({job.fold_seconds:.1f} s a fold{refit} + "
                       f"{job.start_seconds:.1f} s a call), {max(self.left(), 0):.0f} s of "
                       "the budget left")
            self.drop_run(job)
            return False
        return self.keep(job)

    def cheapest_run(self) -> tuple[float, str] | None:
        """(seconds, member) of the cheapest whole run probed so far: a call's overhead, every
        fold fit and the refit at that member's measured rates; None before any probe. A
        probe that could not be followed by its run even at that rate is not started: it
        would only spend the budget."""
        probed = [j for j in self.manifest.jobs if j.fold_seconds is not None and j.fits]
        if not probed:
            return None
        best = min(probed, key=run_cost)
        return run_cost(best), best.member

    def keep(self, job: Job) -> bool:
        job.state = "training"
        self.save()
        return True

    def seed_run(self, member: Member, job: Job) -> None:
        """Another model seed of a finished member: a new run, when its cost fits."""
        first = self.manifest.job(member.name, 0)
        cost = run_cost(first)
        if cost > self.left():
            return self.close(job, "skipped", f"estimated {cost:.0f} s (seed 0's cost), "
                              f"{max(self.left(), 0):.0f} s of the budget left")
        seed = int(read_run_info(Path(first.run_dir)).get("seed", 0)) + job.seed_index
        job.state, job.fits = "training", first.fits
        out = self.train(job, [*self.new_run_args(member, job, folds=job.fits),
                               "--seed", str(seed)], "run")
        if out.rc:
            self.failed(job, out)
        else:
            self.record_scores(job)

    def finish_run(self, job: Job) -> None:
        """Train the rest of the job's run (train.py --resume), then read its scores."""
        out = self.train(job, ["--resume", job.run_dir, "--fits", str(job.fits),
                               "--submissions", self.member_submissions], "run")
        if out.rc:
            self.failed(job, out)
        else:
            self.record_scores(job)

    def record_scores(self, job: Job) -> None:
        scores = read_scores(Path(job.run_dir))
        trained = len(scores.get("fold_scores", []))
        if trained != job.fits:  # --max-time stopped it: the budget, not the member
            why = f"the budget ran out: {Path(job.run_dir).name} trained {trained} of " \
                  f"{job.fits} fold fits"
            self.drop_run(job)
            return self.close(job, "skipped", why)
        job.cv, job.std, self.metric = scores["mean"], scores["std"], scores["metric"]
        self.close(job, "done", "")

    @property
    def member_submissions(self) -> str:
        return str(self.manifest.folder / "submissions")

    def new_run_args(self, member: Member, job: Job, folds: int) -> list[str]:
        options = self.options
        args = ["--comp", options.comp, "--runs", options.runs,
                "--submissions", self.member_submissions]
        args += ["--data", options.data] if options.data else []
        args += ["--demo"] if options.demo else []
        args += ["--dry-run"] if options.dry_run else []
        args += ["--refit", options.refit] if options.refit != "off" else []
        for value in (*options.overrides, *member.overrides()):
            args += ["--set", value]
        return args + ["--fits", str(folds)]  # always: --dry-run alone trains one

    def train(self, job: Job, args: list[str], what: str) -> Outcome:
        """scripts/train.py for `job`; the run folder and the seconds go to the manifest."""
        self.save()

        def record(run_dir: str) -> None:
            job.run_dir = run_dir
            self.save()

        # the run stops before a fold that would start past the budget (a fold in progress
        # finishes: boosters take no deadline), so an estimate that was low costs one fold
        args = ["--max-time", f"{max(self.left(), 1.0):.1f}", *args]
        out = call("train.py", args, self.manifest.folder / "summaries" / f"{job.key}_{what}.json",
                   log=self.log, on_run_dir=record)
        if out.rc == 130:  # train.py was interrupted (Ctrl-C, SIGTERM): its folds are kept
            raise KeyboardInterrupt
        job.seconds += out.wall
        job.run_dir = out.run_dir or job.run_dir
        self.save()
        return out

    def failed(self, job: Job, out: Outcome) -> bool:
        """train.py refused (exit 2) or crashed: said why, its run folder removed."""
        self.drop_run(job)
        self.close(job, "failed", f"train.py exit {out.rc}: {out.error or 'no message'}")
        return False

    def close(self, job: Job, state: str, why: str) -> None:
        job.state, job.why = state, why
        self.save()

    def drop_run(self, job: Job) -> None:
        """Remove the job's unfinished run folder (only a run folder of this competition)."""
        run_dir = Path(job.run_dir) if job.run_dir else None
        if run_dir and run_dir.parent == Path(self.options.runs) / self.options.comp \
                and is_run_folder(run_dir):
            shutil.rmtree(run_dir)
            self.log(f"removed {run_dir}: an unfinished run is never blended")
        job.run_dir = ""

    def progress(self, job: Job, where: str, members_left: int) -> None:
        """One line: the job's score or why not, its seconds, the time spent and left."""
        what = f"CV {self.metric} {job.cv:.5f} ± {job.std:.5f}" if job.state == "done" else \
            f"{job.state}: {job.why}"
        done = [j.seconds for j in self.manifest.jobs if j.state == "done"]
        ahead = ""
        if members_left and done:
            guess = min(sum(done) / len(done) * members_left, max(self.left(), 0))
            ahead = f"; about {guess:.0f} s for the {members_left} members left"
        self.log(f"{where} {job.key}: {what} ({job.seconds:.0f} s); spent {self.spent():.0f} "
                 f"of {self.options.budget:.0f} s{ahead}")


def run_cost(job: Job, fits: int | None = None) -> float:
    """The seconds of one train.py call of a probed job: `fits` fold fits (default all the
    run's) at its measured rate, its refit, and what a call spends outside them (the
    config, the data read, the predictions, the submission, a library's first import)."""
    fits = job.fits if fits is None else fits
    return job.fold_seconds * fits + (job.refit_seconds or 0.0) + (job.start_seconds or 0.0)


def fold_rate(fold_times: tuple[float, ...]) -> float | None:
    """Seconds from one `fold k` line to the next: a fold fit with its scoring, plots and
    files, after the first fold paid the data read and each library's first use; None
    with fewer than two folds printed."""
    return fold_times[1] - fold_times[0] if len(fold_times) >= 2 else None


def refit_seconds(summary: dict) -> float:
    """The seconds train.py's refit models took (its summary's "refit"); 0 without one."""
    fits = (summary.get("refit") or {}).get("fits") or []
    return float(sum(fit.get("seconds") or 0.0 for fit in fits))


def fold_fits(run_dir: str) -> int:
    """The run's fold fits: n_splits x repeats of its resolved config.toml."""
    cfg = read_config(Path(run_dir))
    return cfg.cv.n_splits * cfg.cv.repeats
