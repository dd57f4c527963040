"""Combine the prediction files of runs of one competition into a new run and a submission.

    python scripts/ensemble.py --comp titanic runs/titanic/A_mlp_raw runs/titanic/B_gbdt_raw \
        --method weighted                      # weights fitted on OOF, cross-validated score
    python scripts/ensemble.py --comp digit-recognizer RUN_A RUN_B RUN_C --method hard
    python scripts/ensemble.py --comp titanic RUN_A RUN_B --method weighted --weights 0.3,0.7
    python scripts/ensemble.py --comp house-prices-advanced-regression-techniques RUN_A RUN_B \
        --method weighted                      # a regression: weights minimise the metric
    python scripts/ensemble.py --comp titanic RUN_A RUN_B RUN_C RUN_D --method hill
                                               # greedy selection with replacement (Caruana)
    python scripts/ensemble.py --comp titanic RUN_A RUN_B RUN_C --method stack
                                               # a level-2 logistic / ridge model, same folds
    python scripts/ensemble.py --comp titanic RUN_A RUN_B --method hill --test-from refit
                                               # weights from OOF, applied to the members'
                                               # refit predictions (train.py --refit)
    python scripts/ensemble.py --comp titanic RUN_A RUN_B --demo
                                               # runs made by train.py --demo, on demo data

Methods, the hard-vote tie rule, the regression spaces and the weight fitting are
documented in kit/ensembles/blend.py, hill climbing in kit/ensembles/hill_climbing.py. Members must share
one split (scores.json "split"); --allow-different-folds blends others with a warning.
The sample submission comes from --data, else data/<slug>; from the demo data
(data/<slug>-demo, written as train.py --demo writes it) with --demo, or when a member was
trained on demo data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.errors import KitError  # noqa: E402
from kit.io import write_json  # noqa: E402
from kit.paths import competition_dir, runs_root  # noqa: E402

# kit.ensembles.blend.METHODS, spelled out: the parser answers --help before numpy and pandas load
# (tests/test_help.py checks that the two lists agree).
METHODS = ("soft", "hard", "weighted", "hill", "stack")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comp", required=True, help="competition slug, e.g. titanic")
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR",
        help="run folders (paths, or folder names under <runs>/<slug>/)",
    )
    parser.add_argument("--method", choices=METHODS, default="soft")
    parser.add_argument(
        "--weights", help="weighted: one weight per run, e.g. 0.3,0.7 (default: fitted on OOF)"
    )
    parser.add_argument("--runs", type=Path, help="runs root (default: kit.paths.runs_root())")
    parser.add_argument("--submissions", type=Path, help="submissions root")
    parser.add_argument(
        "--data", type=Path, help="folder holding the sample submission (default: data/<slug>)"
    )
    parser.add_argument("--demo", action="store_true",
                        help="blend demo-trained runs: the sample from data/<slug>-demo (found "
                             "without the flag when a member was trained on demo data)")
    parser.add_argument("--max-steps", type=int,
                        help="hill: greedy steps per climb at most (default 100; it also stops "
                             "when nothing improves)")
    parser.add_argument("--negative-weights", action="store_true",
                        help="hill: search a weight grid per step, negative weights allowed")
    parser.add_argument("--bags", type=int,
                        help="hill: climbs over random member subsets, weights averaged "
                             "(default 1: one climb over all members)")
    parser.add_argument("--bag-fraction", type=float,
                        help="hill: share of the members each bag climbs over (default 0.5)")
    parser.add_argument(
        "--test-from", choices=("folds", "refit"), default="folds",
        help="the members' test predictions blended: their fold models' mean (folds, "
             "test_pred.parquet) or what their refit submitted (refit, refit/test_pred.parquet; "
             "train.py --refit); the weights come from the OOF either way",
    )
    parser.add_argument(
        "--allow-different-folds", action="store_true",
        help="blend runs trained on different splits (refused by default; the report warns)",
    )
    parser.add_argument("--summary-json", type=Path, help="write the summary here")
    return parser.parse_args(argv)


def hill_settings(args: argparse.Namespace):
    """The hill options given, over HillSettings' defaults; None when none was given."""
    from kit.ensembles.hill_climbing import HillSettings

    given = {key: value for key, value in (
        ("max_steps", args.max_steps), ("bags", args.bags), ("bag_fraction", args.bag_fraction),
        ("negative_weights", args.negative_weights or None)) if value is not None}
    return HillSettings(**given) if given else None


def data_dir(args: argparse.Namespace) -> Path:
    """--data; else the demo data (--demo, or a demo-trained member), else data/<slug>, each
    checked (and unzipped) as train.py does, the error naming the command that works."""
    if args.data is not None:
        return args.data
    from kit.config import load_config
    from kit.data.folder import resolve_data_dir
    from kit.ensembles.build import resolve_run_dir
    from kit.submission import demo_trained

    root = args.runs or runs_root()
    demo = args.demo or any(demo_trained(resolve_run_dir(d, args.comp, root))
                            for d in args.run_dirs)
    cfg = load_config(competition_dir(args.comp) / "config.toml", demo=demo)
    retry = (f"python scripts/train.py --comp {args.comp} --demo (twice), then python "
             f"scripts/ensemble.py --comp {args.comp} --demo RUN_DIR RUN_DIR")
    return resolve_data_dir(cfg, None, demo, demo_command=retry)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from kit.ensembles import build as ensemble

    try:
        summary = ensemble.ensemble_runs(
            args.comp, args.run_dirs, method=args.method, weights=args.weights,
            runs_root=args.runs, submissions_root=args.submissions, data_dir=data_dir(args),
            allow_different_folds=args.allow_different_folds, hill=hill_settings(args),
            test_from=args.test_from,
        )
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(args, summary)
    return 0


def report(args: argparse.Namespace, summary: dict) -> None:
    """The blend's table, weights, correlations and files, printed (each column's, for runs
    with several targets); the summary JSON."""
    if "targets" in summary:
        for column, part in summary["targets"].items():
            print(f"\n== target {column!r} ==")
            _report_blend(part)
        print(f"\nrun folder  {summary['run_dir']}\nsubmission  {summary['submission']}")
        print(f"OOF {summary['metric']} (mean over {len(summary['targets'])} targets) = "
              f"{summary['oof_score']:.5f}")
    else:
        _report_blend(summary)
    if summary["demo"]:
        print("note: built from demo-trained runs, so named _demo; submit.py refuses it "
              "without --force")
    if args.summary_json:
        write_json(args.summary_json, summary)


def _report_blend(summary: dict) -> None:
    from kit.ensembles.report import format_matrix, format_table, member_name

    names = [member_name(m["run_dir"]) for m in summary["members"]]
    print()
    print(format_table(summary))
    print(f"\nweights ({summary['weights_source']}): "
          + ", ".join(f"{w:.3f}" for w in summary["weights"]))
    print("\ncorrelation of OOF predictions:")
    print(format_matrix(names, summary["correlation"]))
    print(f"\nrun folder  {summary['run_dir']}")
    print(f"submission  {summary['submission']}")
    print(f"heatmap     {summary['heatmap']}")
    print(f"OOF {summary['metric']} = {summary['oof_score']:.5f}"
          + (" (cross-validated weights)" if summary["oof_score_cv"] is not None else ""))
    if summary["coefficients"] is not None:
        print(f"level-2 coefficients (mean over folds): {summary['coefficients']['coef']}, "
              f"intercept {summary['coefficients']['intercept']}")
    if summary["objective"] and summary["objective"] != summary["metric"]:
        print(f"hill climbing minimised {summary['objective']}: "
              f"{summary['objective_cv']:.5f} (cross-validated)")


if __name__ == "__main__":
    sys.exit(main())
