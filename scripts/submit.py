"""Check a submission CSV against the sample submission, then submit it with the kaggle CLI.

    python scripts/submit.py --comp titanic --file submissions/titanic/<run>.csv -m "mlp 5-fold"
    python scripts/submit.py ... --dry-run   # validate and print the command only
    python scripts/submit.py ... --demo      # a demo-trained file against the demo data; never submits

A file made from demo-trained runs (a run folder ending `_demo` or recording "demo": true,
a submissions/ copy ending `_demo.csv`) is refused unless --force: its model never saw the
competition's data. --demo validates such a file against data/<slug>-demo's sample and
implies --dry-run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.errors import SubmissionError  # noqa: E402
from kit.io import write_json  # noqa: E402
from kit.paths import competition_dir  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True, help="competition slug (folder in competitions/)")
    parser.add_argument("--file", required=True, help="submission CSV to upload")
    parser.add_argument("-m", "--message", required=True, help="submission description")
    parser.add_argument("--data", help="folder with the sample submission (default: data/<comp>)")
    parser.add_argument("--dry-run", action="store_true", help="validate, print the command only")
    parser.add_argument("--demo", action="store_true",
                        help="validate against the demo data (data/<comp>-demo); implies "
                             "--dry-run: a demo-trained file is never submitted")
    parser.add_argument("--force", action="store_true",
                        help="submit a file made from demo-trained runs anyway")
    parser.add_argument("--summary-json", help="write what was done to this JSON file")
    return parser.parse_args(argv)


def data_dir(args: argparse.Namespace) -> Path:
    """--data; else data/<comp>-demo (--demo) or data/<comp>, checked as train.py does."""
    if args.data:
        return Path(args.data)
    from kit.config import load_config
    from kit.data.folder import resolve_data_dir

    cfg = load_config(competition_dir(args.comp) / "config.toml", demo=args.demo)
    retry = f"python scripts/submit.py --comp {args.comp} --file {args.file} -m ... --demo"
    return resolve_data_dir(cfg, None, args.demo, demo_command=retry)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from kit.kaggle.client import submit
    from kit.submission import demo_trained

    demo = demo_trained(args.file)
    if demo and not args.force and not args.demo:
        raise SubmissionError(
            f"{args.file} is demo-trained (its name or run folder ends '_demo', or run.json "
            "records \"demo\": true): its model never saw the competition's data; train "
            "without --demo and submit that run's file, pass --force to submit this one, or "
            f"check it without submitting: python scripts/submit.py --comp {args.comp} "
            f"--file {args.file} -m ... --demo")
    dry_run = args.dry_run or args.demo  # --demo never submits
    summary = submit(args.comp, args.file, args.message, data=data_dir(args), dry_run=dry_run)
    summary["demo"] = demo
    if dry_run:
        what = "valid but demo-trained" if demo else "valid"
        where = " against the demo data (--demo: not submitted)" if args.demo else ""
        print(f"{args.file} is {what}{where}; would run: {summary['command']}")
    else:
        print(f"submitted {args.file} to {args.comp}")
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
