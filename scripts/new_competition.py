"""Create competitions/SLUG/ from templates/ (a commented config.toml and hook stubs).

    python scripts/new_competition.py playground-s5e1 --task tabular
    python scripts/new_competition.py house-prices-advanced-regression-techniques --problem regression
    python scripts/new_competition.py leaf-classification --task image

Then fill in the lines marked EDIT in competitions/SLUG/config.toml, put the data in
data/SLUG/, and run `python scripts/train.py --comp SLUG --dry-run`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kit.cli import run_script  # noqa: E402
from kit.errors import ConfigError  # noqa: E402
from kit.io import write_text  # noqa: E402
from kit.paths import ROOT, competitions_root  # noqa: E402

TASKS = ("tabular", "image")
# What --problem writes into the template: metric and target transform to start from.
PROBLEM_DEFAULTS = {"classification": {"__METRIC__": "accuracy", "__TRANSFORM__": "none"},
                    "regression": {"__METRIC__": "rmse", "__TRANSFORM__": "none"}}
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")  # what Kaggle accepts in competition URLs


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("slug", help="the competition's Kaggle slug (its URL name), e.g. titanic")
    p.add_argument("--task", default="tabular", help=f"one of {', '.join(TASKS)}")
    p.add_argument("--problem", default="classification",
                   help=f"one of {', '.join(PROBLEM_DEFAULTS)} (competition.problem)")
    p.add_argument("--force", action="store_true", help="overwrite an existing folder's files")
    args = p.parse_args(argv)
    if not SLUG.match(args.slug):
        raise ConfigError(f"slug {args.slug!r}: use lowercase letters, digits and '-' "
                          "(the name in https://www.kaggle.com/competitions/<slug>)")
    if args.task not in TASKS:
        raise ConfigError(f"--task {args.task!r}: valid tasks are {', '.join(TASKS)}")
    if args.problem not in PROBLEM_DEFAULTS:
        raise ConfigError(f"--problem {args.problem!r}: valid problems are "
                          f"{', '.join(PROBLEM_DEFAULTS)}")
    fill = {"__SLUG__": args.slug, "__PROBLEM__": args.problem, **PROBLEM_DEFAULTS[args.problem]}
    dest = competitions_root() / args.slug
    if (dest / "config.toml").exists() and not args.force:
        raise ConfigError(f"{dest} already exists; edit it, or pass --force to overwrite "
                          "its files with the template")
    template = ROOT / "templates" / args.task
    written = []
    for src in sorted(template.iterdir()):
        if src.is_file():
            text = src.read_text(encoding="utf-8")
            for key, value in fill.items():
                text = text.replace(key, value)
            written.append(write_text(dest / src.name, text))
    print(f"created {dest}: {', '.join(p.name for p in written)}")
    print(f"next: fill in the EDIT lines of {dest / 'config.toml'}, put the data in "
          f"data/{args.slug}/, then python scripts/train.py --comp {args.slug} --dry-run")
    return {"folder": str(dest), "files": [str(p) for p in written]}


if __name__ == "__main__":
    sys.exit(run_script(main))
