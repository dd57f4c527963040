"""Download a competition's data with the kaggle CLI and extract it safely.

    python scripts/download.py --comp titanic            # -> data/titanic/
    python scripts/download.py --comp titanic --force    # download and extract again
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.io import write_json  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True, help="competition slug (folder in competitions/)")
    parser.add_argument("--data", help="folder for the files (default: data/<comp>)")
    parser.add_argument("--force", action="store_true", help="download and extract again")
    parser.add_argument("--summary-json", help="write what was done to this JSON file")
    args = parser.parse_args(argv)
    from kit.kaggle.client import download  # after --help: it loads pandas

    summary = download(args.comp, data=args.data, force=args.force)
    print(summary["message"])
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
