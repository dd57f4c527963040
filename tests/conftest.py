"""Shared fixtures: small real files in tmp folders, never the network."""

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
