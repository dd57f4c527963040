"""Competition hooks: plain functions in files beside config.toml, called by name.

    build = load_hook(comp_dir, "features", "build")      # competitions/<slug>/features.py
    build(train, test, **cfg.features.params)

The kit never needs editing to add a competition; a missing optional hook returns None.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from kit.errors import ConfigError
from kit.io import file_stamp


def load_hook(comp_dir: Path, module: str, name: str, *, required: bool = False) -> Callable | None:
    path = Path(comp_dir) / f"{module}.py"
    if not path.exists():
        if required:
            raise ConfigError(f"{path} is missing; it must define {name}(...)")
        return None
    # one module per file and version: another competition folder of the same name, or
    # the file edited since (a test, a notebook session), is loaded afresh
    version = hashlib.blake2b(file_stamp(path.resolve()).encode(), digest_size=6).hexdigest()
    key = f"kit_hooks.{Path(comp_dir).name}.{module}_{version}".replace("-", "_")
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        spec.loader.exec_module(mod)
    fn = getattr(sys.modules[key], name, None)
    if fn is None and required:
        raise ConfigError(f"{path} does not define {name}(...)")
    return fn


def hook_hashes(comp_dir: Path) -> dict[str, str]:
    """{file name: sha256} of the competition folder's Python files (the hooks a run may
    call): run.json keeps them, so predict and --resume notice an edited features.py."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(comp_dir).glob("*.py"))}


def call_with_params(fn: Callable, params: dict, where: str, *args):
    """Call a hook with config params, refusing params its signature does not take."""
    sig = inspect.signature(fn)
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    valid = [p.name for p in list(sig.parameters.values())[len(args):]
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(params) - set(valid))
    if unknown and not takes_kwargs:
        raise ConfigError(f"{where}: unknown params {unknown}; "
                          f"{fn.__module__}.{fn.__name__} takes {', '.join(valid) or 'none'}")
    return fn(*args, **params)


BATCH_ROWS = 65_536  # rows per call of a batch hook


def map_batches(fn: Callable, frame, *, hide: tuple[str, ...] = (), where: str = "",
                batch_rows: int = BATCH_ROWS):
    """`fn(batch) -> batch` over `frame` in slices of `batch_rows` rows, as a streamed table
    would meet it: the `hide` columns (the target) are taken out before the call and put
    back after, and a call that changes its batch's row count or order is an error."""
    import pandas as pd

    from kit.errors import DataError

    parts = []
    for start in range(0, len(frame), batch_rows):
        batch = frame.iloc[start:start + batch_rows]
        out = fn(batch.drop(columns=[c for c in hide if c in batch.columns]))
        if not isinstance(out, pd.DataFrame) or not out.index.equals(batch.index):
            got = (f"{len(out)} rows with another index" if isinstance(out, pd.DataFrame)
                   else type(out).__name__)
            raise DataError(f"{where}: {fn.__name__}() must return its batch's {len(batch)} "
                            f"rows in order, with their index; got {got}: add columns, never "
                            "drop or reorder rows")
        parts.append(out.assign(**{c: batch[c] for c in hide if c in batch.columns}))
    return pd.concat(parts) if parts else frame
