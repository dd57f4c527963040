"""Every user-facing script answers --help and argument errors before torch or pandas load
(issue 32 item 4: `train.py --help` took 6 s on 2 cores; the measured times are in the
README's benchmarks page). Benchmarks (scripts/bench_*.py) are not covered: they exist to
load the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py")
                 if not p.name.startswith("bench_"))
HEAVY = ("torch", "pandas", "numpy", "pyarrow", "sklearn", "scipy", "lightgbm", "xgboost",
         "catboost", "optuna", "timm", "matplotlib")
# Runs the script as `python scripts/X.py ARGS` would, then reports the exit status and
# which heavy libraries got imported, as one JSON line.
PROBE = f"""
import json, runpy, sys
script, args = sys.argv[1], sys.argv[2:]
sys.argv = [script, *args]
try:
    runpy.run_path(script, run_name="__main__")
    code = 0
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def probe(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "scripts" / script), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


def test_every_script_is_probed():
    assert {"train.py", "predict.py", "ensemble.py", "submit.py", "runs.py", "kernel.py",
            "tune.py", "download.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_loads_no_heavy_library(script):
    result = probe(script, "--help")
    assert result["code"] == 0, result["stderr"]
    assert result["heavy"] == [], f"{script} --help imported {result['heavy']}"


@pytest.mark.parametrize("script", ["train.py", "ensemble.py", "submit.py", "predict.py"])
def test_an_argument_error_loads_no_heavy_library(script):
    result = probe(script, "--no-such-flag")
    assert result["code"] == 2 and "error:" in result["stderr"]
    assert result["heavy"] == [], f"{script}: an argument error imported {result['heavy']}"


def test_ensemble_help_lists_the_blending_methods():
    """scripts/ensemble.py spells out kit.ensembles.blend.METHODS so --help needs no numpy."""
    from kit.ensembles.blend import METHODS

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ensemble as script
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert script.METHODS == METHODS
