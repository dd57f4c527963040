"""The portfolio's report: report.md in its folder and the same facts as a summary dict
(scripts/portfolio.py --summary-json): members with their CV and seconds, the blend's
method, weights and cross-validated score, the time spent, what was skipped and why.

    summary = write_report(manifest)
"""

from __future__ import annotations

from pathlib import Path

from kit.io import write_text
from kit.portfolio.manifest import Manifest
from kit.run_folder import read_scores

REFIT = {
    "off": "Refit off: each member's test predictions are its fold models' mean.",
    "only": "Refit on all rows (--refit only): each member's test predictions are its refit "
            "model's, trained on every training row; the blend's weights were fitted on the "
            "fold models' OOF. A refit has no OOF score: every CV above is the fold models'.",
    "with_folds": "Refit on all rows (--refit with_folds): each member's test predictions are "
                  "half its refit model's, half its fold models' mean; the blend's weights were "
                  "fitted on the fold models' OOF. A refit has no OOF score: every CV above is "
                  "the fold models'.",
}


def summarize(manifest: Manifest) -> dict:
    """The portfolio's facts, as --summary-json writes them."""
    done = manifest.done()
    scores = read_scores(Path(done[0].run_dir)) if done else {}
    return {
        "portfolio_dir": str(manifest.folder), "report": str(manifest.folder / "report.md"),
        "comp": manifest.options.comp, "metric": scores.get("metric"),
        "mode": scores.get("mode"), "budget": manifest.options.budget,
        "spent": manifest.spent, "seeds": manifest.options.seeds,
        "members": [{"member": j.member, "seed_index": j.seed_index, "state": j.state,
                     "cv": j.cv, "std": j.std, "seconds": j.seconds, "run_dir": j.run_dir,
                     "why": j.why} for j in manifest.jobs],
        "skipped": [{"member": j.member, "seed_index": j.seed_index, "state": j.state,
                     "why": j.why} for j in manifest.jobs if j.state not in ("done",)],
        "blend": manifest.blend, "submission": manifest.submission, "refit": manifest.options.refit,
        "demo": manifest.options.demo,
    }


def write_report(manifest: Manifest) -> dict:
    """Write report.md; return the summary it shows."""
    summary = summarize(manifest)
    write_text(manifest.folder / "report.md", render(summary))
    return summary


def render(summary: dict) -> str:
    metric = f"{summary['metric']} ({summary['mode']})"
    lines = [f"# Portfolio of {summary['comp']}", "",
             f"Folder `{summary['portfolio_dir']}`. Metric {metric}. Time: "
             f"{summary['spent']:.0f} s spent of a {summary['budget']:.0f} s budget (wall "
             "clock, every session together).", "",
             "| member | seed | state | CV | ± | seconds | run folder |",
             "|---|---|---|---|---|---|---|"]
    for m in summary["members"]:
        cv = "" if m["cv"] is None else f"{m['cv']:.5f}"
        std = "" if m["std"] is None else f"{m['std']:.5f}"
        lines.append(f"| {m['member']} | {m['seed_index']} | {m['state']} | {cv} | {std} | "
                     f"{m['seconds']:.0f} | {Path(m['run_dir']).name if m['run_dir'] else ''} |")
    lines += ["", "## Blend", "", *_blend_lines(summary["blend"]), "",
              f"Submission: `{summary['submission']}`", ""]
    if summary["skipped"]:
        lines += ["## Skipped or failed", ""]
        lines += [f"- {m['member']} seed {m['seed_index']}: {m['state']}: {m['why']}"
                  for m in summary["skipped"]]
        lines.append("")
    lines += ["## Test predictions", "", REFIT[summary["refit"]], ""]
    return "\n".join(lines)


def _blend_lines(blend: dict | None) -> list[str]:
    if not blend:
        return ["No blend."]
    if blend["method"] == "single":
        return ["One finished member: its own submission (no blend)."]
    by_method = ", ".join(f"{m} {cv:.5f}" for m, cv in blend.get("cv_by_method", {}).items())
    lines = [f"Chosen: {blend['method']}, cross-validated score {blend['cv']:.5f} "
             f"(each method tried: {by_method}). Ensemble run `{blend['run_dir']}`.", "",
             "| run | weight |", "|---|---|"]
    return lines + [f"| {run} | {'' if weight is None else f'{weight:.3f}'} |"
                    for run, weight in blend["weights"].items()]
