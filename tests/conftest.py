"""Shared fixtures: small real files in tmp folders, never the network."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def run_train(tmp_path, data, *extra, env=None, timeout=300):
    """scripts/train.py in a subprocess; returns (process, summary dict or None)."""
    summary = tmp_path / "summary.json"
    summary.unlink(missing_ok=True)
    proc = subprocess.run([*train_cmd(tmp_path, data, *extra), "--summary-json", str(summary)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
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
