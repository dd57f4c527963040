"""The competition's data folder: a Kaggle download unzipped, demo data written, or an
error that names the command that gets the files.

Imports: kit.errors, kit.paths, kit.hooks, kit.config, kit.data.archive, kit.data.sources.
"""

from __future__ import annotations

from pathlib import Path

from kit.config import Config
from kit.data.archive import is_extracted, safe_extract
from kit.errors import DataError
from kit.hooks import load_hook
from kit.paths import competition_dir, data_root


def resolve_data_dir(cfg: Config, data: Path | None, demo: bool, *,
                     demo_command: str = "") -> Path:
    """The competition's data folder: unzip a Kaggle download, or explain how to get one.

    demo: write the synthetic demo data to data/<slug>-demo (or `data`) and use it.
    demo_command: the calling script's command on demo data, named when no data is found
    (default: train.py's).
    """
    from kit.data.sources import source_exists  # pandas: after --help

    slug = cfg.competition.slug
    if demo:
        data_dir = data or data_root() / f"{slug}-demo"  # never overwrite real data
        make_demo = load_hook(competition_dir(slug), "demo", "make_demo")
        if make_demo is None:
            raise DataError(f"competition {slug!r} has no demo.py; train on real data instead")
        make_demo(data_dir)
        print(f"DEMO DATA: synthetic {slug} files written to {data_dir} (not the real competition)")
        if cfg.demo:
            recipe = ", ".join(f"{k}={v}" for k, v in cfg.demo.items())
            print(f"demo recipe from config.toml [demo] (a CPU-sized run): {recipe}")
        return data_dir
    data_dir = data or data_root() / slug
    archive = data_dir / f"{slug}.zip"
    # A present train.csv may be cut short by an interrupted unzip: while the zip is here,
    # only the marker of a finished extraction of this very zip says the files are whole.
    if archive.exists() and not is_extracted(archive, data_dir):
        print(f"extracting {archive}")
        safe_extract(archive, data_dir)
    if not source_exists(data_dir, cfg.data.train):
        fix = (f"kaggle competitions download -c {slug} -p {data_dir}" if cfg.competition.kaggle
               else f"copy the competition files into {data_dir}")
        retry = demo_command or f"python scripts/train.py --comp {slug} --demo"
        raise DataError(f"no {cfg.data.train} in {data_dir}; get the data with `{fix}` or "
                        f"pass --data DIR, the folder holding it (or try it on synthetic demo "
                        f"data: `{retry}`)")
    return data_dir
