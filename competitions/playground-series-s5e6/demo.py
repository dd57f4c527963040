"""Synthetic fields in the layout of Kaggle's Playground S5E6 (train.csv, test.csv,
sample_submission.csv): weather, soil, crop and the soil's N, P, K; the fertilizer follows
the nutrient the soil lacks most, the crop's appetite and noise, so MAP@3 rewards a model
that ranks the runners-up well. It is demo data: the scores mean nothing on Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv, write_text

FERTILIZERS = ["10-26-26", "14-35-14", "17-17-17", "20-20", "28-28", "DAP", "Urea"]
# each fertilizer's nitrogen, phosphorus and potassium share (DAP 18-46-0, Urea 46-0-0)
NPK = np.array([[10, 26, 26], [14, 35, 14], [17, 17, 17], [20, 20, 0], [28, 28, 0],
                [18, 46, 0], [46, 0, 0]], dtype=float)
SOILS = ["Sandy", "Loamy", "Black", "Red", "Clayey"]
CROPS = ["Maize", "Sugarcane", "Cotton", "Tobacco", "Paddy", "Barley", "Wheat", "Millets",
         "Oil seeds", "Pulses", "Ground Nuts"]


def _fields(n: int, start_id: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "id": np.arange(start_id, start_id + n),
        "Temparature": rng.integers(25, 39, n), "Humidity": rng.integers(50, 73, n),
        "Moisture": rng.integers(25, 66, n), "Soil Type": rng.choice(SOILS, n),
        "Crop Type": rng.choice(CROPS, n), "Nitrogen": rng.integers(4, 43, n),
        "Potassium": rng.integers(0, 20, n), "Phosphorous": rng.integers(0, 43, n)})


def _fertilizer(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """A softmax over the fertilizers: how well each fills the soil's shortfall."""
    have = frame[["Nitrogen", "Phosphorous", "Potassium"]].to_numpy(float)
    lack = (np.array([42.0, 42.0, 19.0]) - have) / np.array([42.0, 42.0, 19.0])  # 0..1
    appetite = pd.Series(CROPS).map(dict(zip(CROPS, np.linspace(0.6, 1.4, len(CROPS)))))
    scale = frame["Crop Type"].map(dict(zip(CROPS, appetite))).to_numpy()[:, None]
    logits = 4 * scale * lack @ (NPK / NPK.sum(1, keepdims=True)).T  # (n, 7)
    logits += 0.3 * (frame["Moisture"].to_numpy()[:, None] > 45) * (np.arange(7) % 2)
    logits += rng.gumbel(size=logits.shape) * 0.6  # noise: the top class is often wrong
    return np.asarray(FERTILIZERS)[logits.argmax(1)]


def make_demo(data_dir: Path, seed: int = 0, n_train: int = 3000, n_test: int = 1000) -> None:
    """Write the demo files into `data_dir` (each through a temporary name: kit.io)."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    train = _fields(n_train, 0, rng)
    train["Fertilizer Name"] = _fertilizer(train, rng)
    test = _fields(n_test, n_train, rng)
    write_csv(data_dir / "train.csv", train)
    write_csv(data_dir / "test.csv", test)
    write_csv(data_dir / "sample_submission.csv",
              pd.DataFrame({"id": test["id"], "Fertilizer Name": "14-35-14 10-26-26 Urea"}))
    write_text(data_dir / "DEMO_README.txt",
               "SYNTHETIC DEMO DATA written by `--demo`, not the real Playground S5E6 files.\n"
               "Download the real data with: kaggle competitions download -c "
               "playground-series-s5e6 -p data/playground-series-s5e6\n")
