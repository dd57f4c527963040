"""Check a submission CSV against the sample submission, then submit it with the kaggle CLI.

    python scripts/submit.py --comp titanic --file submissions/titanic/<run>.csv -m "mlp 5-fold"
    python scripts/submit.py ... --dry-run   # validate and print the command only

A file made from demo-trained runs (a run folder ending `_demo` or recording "demo": true,
a submissions/ copy ending `_demo.csv`) is refused unless --force: its model never saw the
competition's data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script
from kit.errors import SubmissionError
from kit.io import write_json
from kit.kaggle import submit
from kit.submission import demo_trained


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True, help="competition slug (folder in competitions/)")
    parser.add_argument("--file", required=True, help="submission CSV to upload")
    parser.add_argument("-m", "--message", required=True, help="submission description")
    parser.add_argument("--data", help="folder with the sample submission (default: data/<comp>)")
    parser.add_argument("--dry-run", action="store_true", help="validate, print the command only")
    parser.add_argument("--force", action="store_true",
                        help="submit a file made from demo-trained runs anyway")
    parser.add_argument("--summary-json", help="write what was done to this JSON file")
    args = parser.parse_args(argv)
    demo = demo_trained(args.file)
    if demo and not args.force:
        raise SubmissionError(
            f"{args.file} is demo-trained (its name or run folder ends '_demo', or run.json "
            "records \"demo\": true): its model never saw the competition's data; train "
            "without --demo and submit that run's file, or pass --force to submit this one")
    summary = submit(args.comp, args.file, args.message, data=args.data, dry_run=args.dry_run)
    summary["demo"] = demo
    if args.dry_run:
        what = "valid but demo-trained (--force)" if demo else "valid"
        print(f"{args.file} is {what}; would run: {summary['command']}")
    else:
        print(f"submitted {args.file} to {args.comp}")
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
