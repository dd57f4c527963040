"""scripts/tune.py imported as a module for in-process tests (scripts/ is not a package)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "kit_scripts_tune", Path(__file__).resolve().parents[1] / "scripts" / "tune.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
main = _module.main
