"""Synthetic market rows in the layout of Jane Street's 2024 competition (with a row_id, see
config.toml): days (date_id) of time steps (time_id) for 20 symbols, features driven by a
hidden state, per-row weights, responder_6 and the other responders (train only). The test
rows are the days after the training days. It is demo data: the scores mean nothing on
Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv, write_text

N_FEATURES = 12


def _rows(days: range, rng: np.random.Generator) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([days, range(8), range(20)],
                                       names=["date_id", "time_id", "symbol_id"])
    frame = index.to_frame(index=False)
    n = len(frame)
    state = rng.normal(size=(n, 3))
    features = state @ rng.normal(size=(3, N_FEATURES)) + rng.normal(0, 1.0, (n, N_FEATURES))
    for j in range(N_FEATURES):
        frame[f"feature_{j:02d}"] = features[:, j].round(4)
    frame["weight"] = rng.gamma(2.0, 1.0, n).round(4)
    signal = 0.4 * state[:, 0] - 0.3 * state[:, 1] * (frame["symbol_id"].to_numpy() % 2)
    # heavier rows are calmer: a weighted fit and score differ from unweighted ones
    noise = rng.normal(size=n) / np.sqrt(frame["weight"].to_numpy())
    frame["_signal"], frame["_noise"] = signal, noise
    return frame


def make_demo(data_dir: Path, seed: int = 0) -> None:
    """Write the demo files into `data_dir` (each through a temporary name: kit.io)."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = _rows(range(40), rng)
    rows.insert(0, "row_id", np.arange(len(rows)))
    signal, noise = rows.pop("_signal").to_numpy(), rows.pop("_noise").to_numpy()
    for k in range(9):
        mix = 1.0 if k == 6 else rng.uniform(0.2, 0.8)
        rows[f"responder_{k}"] = (mix * signal + noise * rng.uniform(0.5, 1.0)).round(5)
    train = rows[rows["date_id"] < 32]
    test = rows[rows["date_id"] >= 32].drop(columns=[f"responder_{k}" for k in range(9)])
    write_csv(data_dir / "train.csv", train)
    write_csv(data_dir / "test.csv", test)
    write_csv(data_dir / "sample_submission.csv",
              pd.DataFrame({"row_id": test["row_id"], "responder_6": 0.0}))
    write_text(data_dir / "DEMO_README.txt",
               "SYNTHETIC DEMO DATA written by `--demo`, not the real Jane Street files.\n"
               "Download the real data with: kaggle competitions download -c "
               "jane-street-real-time-market-data-forecasting -p "
               "data/jane-street-real-time-market-data-forecasting\n")
