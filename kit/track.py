"""Tracking: history.csv per fold always; the console line is printed by the trainer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kit.io import write_csv


class History:
    """Per-epoch rows of one fold, rewritten atomically to history.csv after every epoch."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))
        write_csv(self.path, pd.DataFrame(self.rows))
