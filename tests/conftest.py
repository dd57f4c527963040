"""Shared fixtures: small real files in tmp folders, never the network."""

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRIPTS = ROOT / "scripts"

from kit.runtime.in_process import exit_status, process_kept  # noqa: E402 (after sys.path)

# The small tabular competitions tests write: write_config's defaults, section by section
TABULAR = {"competition": {"task": "tabular", "metric": "accuracy"},
           "data": {"id": "id", "target": "label"},
           "features": {"numeric": "auto", "categorical": "auto"}}


def write_config(folder: Path, sections: dict | None = None) -> Path:
    """folder/config.toml: TABULAR with each of `sections` ({"cv": {"n_splits": 3}},
    {"model.params.gbdt": {...}}) merged into its section. Values are written as JSON,
    which TOML reads the same (strings, numbers, booleans, lists)."""
    tables = {name: dict(keys) for name, keys in TABULAR.items()}
    for name, keys in (sections or {}).items():
        tables.setdefault(name, {}).update(keys)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text("\n".join(f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                                      for key, value in keys.items())
                              for name, keys in tables.items()))
    return path


@pytest.fixture
def titanic_demo(tmp_path):
    """The Titanic demo data written in Kaggle's layout."""
    from kit.hooks import load_hook

    make_demo = load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")
    data = tmp_path / "data"
    make_demo(data, seed=0)
    return data


def train_cmd(tmp_path, data, *extra) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "train.py"), "--comp", "titanic",
            "--data", str(data), "--runs", str(tmp_path / "runs"),
            "--submissions", str(tmp_path / "subs"), *extra]


def run_train(tmp_path, data, *extra, env=None, timeout=300, fresh=True):
    """scripts/train.py on Titanic's layout, in a subprocess (or in this process unless
    `fresh`: run_script); (process, summary or None)."""
    return run_script("train.py", *train_cmd(tmp_path, data, *extra)[2:],
                      summary=tmp_path / "summary.json", env=env, fresh=fresh, timeout=timeout)


def run_script(name: str, *args, summary: Path, env: dict | None = None, fresh: bool = False,
               timeout: int = 300) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`python scripts/<name> args --summary-json summary`: in this process (run_in_process),
    or in a new interpreter (one OpenMP thread) when `fresh`, where the exit status a shell
    sees is the point; (its outcome, the summary it wrote or None)."""
    summary = Path(summary)
    summary.unlink(missing_ok=True)
    argv = [*map(str, args), "--summary-json", str(summary)]
    if fresh:
        proc = subprocess.run([sys.executable, str(SCRIPTS / name), *argv], capture_output=True,
                              text=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    else:
        proc = run_in_process(name, *argv, env=env)
    return proc, (json.loads(summary.read_text()) if summary.exists() else None)


@pytest.fixture
def one_torch_thread():
    """Small batches on 2 cores: a second torch thread costs more than it saves. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def majority_share(train_csv, target: str) -> float:
    """The accuracy of always answering the most frequent class: a learning test asserts
    a margin above it, never a fixed number a constant model could pass."""
    import pandas as pd

    return float(pd.read_csv(train_csv)[target].value_counts(normalize=True).iloc[0])


def run_in_process(script: str, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python scripts/<script> args` run in this process: the script's own `__main__` block
    under its sys.argv, with its exit status, stdout and stderr, without the seconds of
    imports a new interpreter pays (torch, pandas, the boosters). `env` is added to the
    environment for the call. What a run changes in the process (threads, RNGs, the SIGTERM
    handler, warnings, environment, sys.path, cwd) is put back afterwards
    (kit.runtime.in_process, as the portfolio runs its members). Not as in a new
    interpreter: modules imported stay imported (the kit loads a hook file afresh when its
    path, size or mtime differ), and torch's inter-op pool keeps the size it first had.

    >>> proc = run_in_process("train.py", "--comp", "titanic", "--demo")  # proc.returncode
    """
    argv = [str(SCRIPTS / script), *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    with process_kept(env), redirect_stdout(out), redirect_stderr(err):
        sys.argv = argv
        rc = exit_status(argv[0])
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())
