"""What a study is keyed on: everything its trials' scores depend on, hashed.

    known = {}                                                    # file_stamp -> file hash
    parts = study_parts(cfg, space, data_dir, comp_dir, known)    # {"data": .., "key": ..}
    name = study_name("gbdt", parts)                              # "gbdt-3f9a1c22e0"

The data part hashes the training files' bytes (blake2b, streamed), never a path or an
mtime: those differ between machines sharing a database and change when a zip is
extracted again. The competition's hook files (*.py) count as code the scores depend on;
the resolved config counts less the settings that change only speed or host (device,
threads, the time budget, tracking) and less the tuned parameters themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

from kit.config import Config
from kit.hooks import hook_hashes
from kit.io import file_stamp

# Settings that change how fast a trial runs or which host it talks to, never its score.
_NOT_SCORED = {"competition": ("description",), "data": ("csv_cache_mb",),
               "train": ("device", "num_threads", "num_workers", "max_time", "dask_scheduler")}
# Sections that are not settings: recipes already applied to the others ([demo], [cpu], ..),
# tracking, and the search spaces (the study's own space is keyed on its own)
_NOT_SETTINGS = ("track", "tune", "dry_run", "demo", "cpu", "gpu", "mps")
_BLOCK = 1 << 20  # bytes hashed per read


def file_hash(path: Path) -> str:
    """blake2b of a file's bytes, read in 1 MiB blocks (never the whole file in memory)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(files: list[Path], known: dict[str, str]) -> str:
    """One hash of the files' contents in order; `known` maps file_stamp -> file_hash and
    gains the files it lacks (a cache, so a large table is read once, not per process)."""
    digests = []
    for path in files:
        stamp = file_stamp(path)
        if stamp not in known:
            known[stamp] = file_hash(path)
        digests.append(known[stamp])
    return _digest(digests)


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def scored_config(cfg: Config, space: dict) -> dict:
    """The resolved config as it decides a trial's score: less speed and host settings,
    and less the tuned parameters (each trial sets its own)."""
    from kit.config import to_raw

    raw = {k: v for k, v in to_raw(cfg).items() if k not in _NOT_SETTINGS}
    for section, keys in _NOT_SCORED.items():
        raw[section] = {k: v for k, v in raw[section].items() if k not in keys}
    model = cfg.model.name
    params = dict(raw["model"]["params"])
    params[model] = {k: v for k, v in dict(params.get(model, {})).items() if k not in space}
    raw["model"] = {**raw["model"], "params": params}
    return raw


def study_parts(cfg: Config, space: dict, data_dir: Path, comp_dir: Path,
                known: dict[str, str]) -> dict[str, str]:
    """What a study's scores depend on, each hashed, and `key`: their hash in 10 hex digits.
    The data part hashes the training files' bytes, never a path or an mtime (they differ
    between machines sharing a database); an image task's image files are not read."""
    from kit.data.sources import source_files

    parts = {"data": content_hash(source_files(data_dir, cfg.data.train, "train"), known),
             "hooks": _digest(hook_hashes(comp_dir)),  # as run.json keeps them
             "competition": cfg.competition.slug, "metric": cfg.competition.metric,
             "config": _digest(scored_config(cfg, space)), "space": _digest(space)}
    return {**parts, "key": _digest(parts)[:10]}


def study_name(model: str, parts: dict, *, demo: bool = False) -> str:
    """The default study name: the model and the key (other data, another space: another
    study), marked `_demo` like a demo run."""
    return f"{model}-{parts['key']}" + ("_demo" if demo else "")


def study_seed(seed: int) -> int:
    """The sampler's seed in this process: train.seed, the host and the pid. TPE seeded
    alike in several processes proposes the same trials."""
    text = f"{seed}|{socket.gethostname()}|{os.getpid()}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def read_known(path: Path) -> dict[str, str]:
    """The file-hash cache content_hash fills (file_stamp -> hash); {} when absent or bad."""
    try:
        known = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}
