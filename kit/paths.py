"""Where things live: the repo, competition folders, data, runs, submissions, Kaggle.

Machine-specific roots come from environment variables or an untracked `local.toml`
(`[paths] data_root = "..."`), never from committed configs. Inside a Kaggle kernel
(`/kaggle/input` exists, or KAGGLE_KERNEL_RUN_TYPE is set) data is read from
`/kaggle/input/<slug>/` and everything is written under `/kaggle/working/`;
KIT_KAGGLE_ROOT moves that root so tests can stand up a fake `/kaggle` tree.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from kit.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# A competition's slug is a name, never a path: Kaggle's slugs are lowercase words joined by
# hyphens. A run folder's config.toml "may come from anyone", so the slug it holds must not
# lead outside the competitions folder (whose features.py the kit would then execute).
SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")


def check_slug(slug: object, where: str = "competition.slug") -> str:
    """`slug` when it is a competition name (^[a-z0-9][a-z0-9-]*$); else a ConfigError."""
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        raise ConfigError(f"{where} = {slug!r} is not a competition name: use lowercase "
                          "letters, digits and hyphens (a Kaggle slug such as 'titanic'), "
                          "never a path")
    return slug


def competitions_root() -> Path:
    return Path(os.environ.get("KIT_COMPETITIONS_ROOT", ROOT / "competitions"))


def kaggle_root() -> Path:
    return Path(os.environ.get("KIT_KAGGLE_ROOT", "/kaggle"))


def in_kaggle() -> bool:
    """True inside a Kaggle kernel (or a fake /kaggle tree given by KIT_KAGGLE_ROOT)."""
    if "KIT_KAGGLE_ROOT" in os.environ:
        return (kaggle_root() / "input").is_dir()
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")) or (kaggle_root() / "input").is_dir()


def _local(key: str) -> str | None:
    path = ROOT / "local.toml"
    if not path.exists():
        return None
    with open(path, "rb") as fh:
        return tomllib.load(fh).get("paths", {}).get(key)


def _root(env: str, key: str, default: Path, kaggle_default: Path) -> Path:
    if env in os.environ:
        return Path(os.environ[env])
    if in_kaggle():
        return kaggle_default
    local = _local(key)
    return Path(local) if local else default


def data_root() -> Path:
    return _root("KIT_DATA_ROOT", "data_root", ROOT / "data", kaggle_root() / "input")


def runs_root() -> Path:
    return _root("KIT_RUNS_ROOT", "runs_root", ROOT / "runs", kaggle_root() / "working" / "runs")


def submissions_root() -> Path:
    return _root(
        "KIT_SUBMISSIONS_ROOT", "submissions_root", ROOT / "submissions", kaggle_root() / "working"
    )


def competition_dir(slug: str) -> Path:
    """The folder of a competition; an unknown slug lists the ones that exist."""
    folder = competitions_root() / check_slug(slug)
    if not (folder / "config.toml").exists():
        known = sorted(p.name for p in competitions_root().glob("*/config.toml") for p in [p.parent])
        raise ConfigError(
            f"unknown competition {slug!r}: no {folder / 'config.toml'}; known: "
            f"{', '.join(known) or 'none'}. Create one with "
            f"`python scripts/new_competition.py {slug} --task tabular`"
        )
    return folder
