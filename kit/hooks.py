"""Competition hooks: plain functions in files beside config.toml, called by name.

    build = load_hook(comp_dir, "features", "build")      # competitions/<slug>/features.py
    build(train, test, **cfg.features.params)

The kit never needs editing to add a competition; a missing optional hook returns None.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from kit.errors import ConfigError


def load_hook(comp_dir: Path, module: str, name: str, *, required: bool = False) -> Callable | None:
    path = Path(comp_dir) / f"{module}.py"
    if not path.exists():
        if required:
            raise ConfigError(f"{path} is missing; it must define {name}(...)")
        return None
    key = f"kit_hooks.{Path(comp_dir).name}.{module}".replace("-", "_")
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        spec.loader.exec_module(mod)
    fn = getattr(sys.modules[key], name, None)
    if fn is None and required:
        raise ConfigError(f"{path} does not define {name}(...)")
    return fn


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
