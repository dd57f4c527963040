"""Atomic file writes: write to a temporary name in the same folder, then os.replace.

An interrupted run (Ctrl-C, SIGKILL, a full disk) therefore never leaves a half-written
checkpoint, prediction file or submission, and never clobbers the previous good one.
And file_stamp, the one key caches use to notice a changed input file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: scripts import kit.io before --help, pandas costs ~1 s
    import pandas as pd


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success it replaces `dest` in one step.

    >>> import tempfile
    >>> dest = Path(tempfile.mkdtemp()) / "scores.json"
    >>> with atomic_path(dest) as tmp:
    ...     _ = tmp.write_text("{}")
    >>> dest.read_text(), tmp.exists()
    ('{}', False)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(dest: str | Path, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def write_json(dest: str | Path, obj: Any) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_csv(dest: str | Path, frame: pd.DataFrame) -> Path:
    with atomic_path(dest) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(dest)


def write_parquet(dest: str | Path, frame: pd.DataFrame) -> Path:
    with atomic_path(dest) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(dest)


def save_torch(dest: str | Path, obj: Any) -> Path:
    """torch.save through a temporary file (checkpoints must load with weights_only=True)."""
    import torch

    with atomic_path(dest) as tmp:
        torch.save(obj, tmp)
    return Path(dest)


def file_stamp(path: str | Path) -> str:
    """`path`, its size and its mtime (ns) in one string, "<path>|missing" when absent: a
    cache key that changes when the file does."""
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path}|missing"
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def _json_default(value: Any) -> Any:
    # numpy scalars and paths show up in summaries; everything else is a bug.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
