"""The portfolio's blend and its one submission.

Hill climbing (Caruana selection on OOF, scripts/ensemble.py --method hill) over every
finished member; stacking (--method stack) as well, and the stack is chosen only when its
cross-validated score beats hill climbing's (on a time-ordered split both fit forward in
time: a fold's blend from the earlier folds only, kit/ensembles/blend.py). Both
ensembles write their submission inside the portfolio folder; the chosen one is copied,
byte for byte (it was checked against the sample when written), to
<submissions>/<slug>/<its run name>.csv: the only file the portfolio writes there.
With --refit the weights (fitted on the members' OOF, their fold models') are applied to
the members' refit test predictions (ensemble.py --test-from refit); one finished member
submits its own run's submission, its refit's already.

    blend = blend_members(manifest, log)   # {"method", "cv", "weights", "submission"...}
"""

from __future__ import annotations

from pathlib import Path

from kit.errors import KitError
from kit.io import atomic_path
from kit.portfolio.calls import call
from kit.portfolio.manifest import Manifest


def blend_members(manifest: Manifest, log=print) -> dict:
    """Blend the finished jobs; write the chosen submission; the blend's facts."""
    done = manifest.done()
    if len(done) == 1:
        only = Path(done[0].run_dir)
        log(f"one finished member ({done[0].key}): its own submission, no blend")
        return {"method": "single", "cv": done[0].cv, "weights": {only.name: 1.0},
                "run_dir": str(only),
                "submission": _publish(_member_submission(manifest, only), manifest)}
    tried = {m: _ensemble(manifest, m, done, log) for m in ("hill", "stack")}
    scores = {m: s for m, s in tried.items() if s is not None}
    if not scores:
        raise KitError(f"every blend of {len(done)} members failed (see above); the members' "
                       f"runs are in {manifest.options.runs or 'runs/'}: blend them with "
                       "scripts/ensemble.py")
    chosen = _choose(scores, log)
    summary = scores[chosen]
    return {"method": chosen, "cv": _cv(summary), "mode": summary["mode"],
            "cv_by_method": {m: _cv(s) for m, s in scores.items()},
            "weights": {Path(m["run_dir"]).name: m["weight"] for m in summary["members"]},
            "run_dir": summary["run_dir"],
            "submission": _publish(Path(summary["submission"]), manifest)}


def _cv(summary: dict) -> float:
    """The blend's score: cross-validated when its weights were fitted (hill, stack)."""
    cv = summary.get("oof_score_cv")
    return summary["oof_score"] if cv is None else cv


def _choose(scores: dict, log) -> str:
    """Hill climbing, or stacking when its cross-validated score is strictly better."""
    if "stack" not in scores or "hill" not in scores:
        return next(iter(scores))
    hill, stack = _cv(scores["hill"]), _cv(scores["stack"])
    better = stack > hill if scores["hill"]["mode"] == "max" else stack < hill
    log(f"blend: hill climbing {hill:.5f}, stacking {stack:.5f} (cross-validated): "
        f"{'stacking' if better else 'hill climbing'} chosen")
    return "stack" if better else "hill"


def _ensemble(manifest: Manifest, method: str, done, log) -> dict | None:
    options = manifest.options
    args = ["--comp", options.comp, "--method", method, "--runs", options.runs,
            "--submissions", str(manifest.folder / "submissions")]
    args += ["--data", options.data] if options.data else []
    args += ["--demo"] if options.demo else []
    args += ["--test-from", "refit"] if options.refit != "off" else []
    log(f"blend: scripts/ensemble.py --method {method} over {len(done)} runs")
    out = call("ensemble.py", [*args, *(job.run_dir for job in done)],
               manifest.folder / "summaries" / f"blend_{method}.json", log=log)
    if out.rc:
        log(f"blend {method} failed: {out.error}")
    return out.summary


def _member_submission(manifest: Manifest, run_dir: Path) -> Path:
    return manifest.folder / "submissions" / manifest.options.comp / f"{run_dir.name}.csv"


def _publish(source: Path, manifest: Manifest) -> str:
    """Copy the checked submission to <submissions>/<slug>/ under its own name."""
    dest = Path(manifest.options.submissions) / manifest.options.comp / source.name
    with atomic_path(dest) as tmp:
        tmp.write_bytes(source.read_bytes())
    return str(dest)

