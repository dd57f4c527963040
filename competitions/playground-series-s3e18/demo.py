"""Synthetic molecules in the layout of Kaggle's Playground Series S3E18 (train.csv,
test.csv, sample_submission.csv): numeric descriptors, two correlated binary labels EC1 and
EC2 to predict, and EC3-EC6, which train.csv holds and test.csv does not. It is demo data:
the scores mean nothing on Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv, write_text

DESCRIPTORS = ["BertzCT", "Chi1", "Chi1n", "Chi1v", "Chi2n", "Chi2v", "Chi3v", "Chi4n",
               "EState_VSA1", "EState_VSA2", "ExactMolWt", "FpDensityMorgan1",
               "HallKierAlpha", "Kappa3", "MaxAbsEStateIndex", "NumHeteroatoms", "PEOE_VSA10",
               "SMR_VSA10", "SlogP_VSA3", "TPSA", "fr_COO", "fr_COO2"]


def _molecules(n: int, rng: np.random.Generator) -> pd.DataFrame:
    latent = rng.normal(size=(n, 4))
    mixing = rng.normal(size=(4, len(DESCRIPTORS)))
    values = latent @ mixing + rng.normal(0, 0.8, (n, len(DESCRIPTORS)))
    frame = pd.DataFrame(np.exp(values / 3).round(4), columns=DESCRIPTORS)
    frame["NumHeteroatoms"] = rng.poisson(np.exp(1 + latent[:, 0] / 2))
    frame["fr_COO"] = rng.binomial(2, 1 / (1 + np.exp(-latent[:, 1])))
    frame["fr_COO2"] = frame["fr_COO"]
    return frame.assign(_a=latent[:, 0], _b=latent[:, 1], _c=latent[:, 2])


def _labels(frame: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    a, b, c = frame["_a"].to_numpy(), frame["_b"].to_numpy(), frame["_c"].to_numpy()
    shared = rng.normal(size=len(frame))
    labels = {"EC1": 1.0 + 0.9 * a - 0.5 * b ** 2 + shared,
              "EC2": 1.3 + 0.8 * b + 0.4 * a * c + shared}
    labels |= {f"EC{k}": -1.5 + 0.7 * c * k / 4 + rng.normal(size=len(frame)) for k in range(3, 7)}
    return {name: (score + rng.logistic(size=len(frame)) > 0).astype(int)
            for name, score in labels.items()}


def make_demo(data_dir: Path, seed: int = 0) -> None:
    """Write the demo files into `data_dir` (each through a temporary name: kit.io)."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = _molecules(4000, rng)
    labels = _labels(rows, rng)
    rows = rows.drop(columns=["_a", "_b", "_c"])
    rows.insert(0, "id", np.arange(len(rows)))
    train, test = rows.iloc[:3000].copy(), rows.iloc[3000:].copy()
    for name, values in labels.items():
        train[name] = values[:3000]
    write_csv(data_dir / "train.csv", train)
    write_csv(data_dir / "test.csv", test)
    write_csv(data_dir / "sample_submission.csv",
              pd.DataFrame({"id": test["id"], "EC1": 0.5, "EC2": 0.5}))
    write_text(data_dir / "DEMO_README.txt",
               "SYNTHETIC DEMO DATA written by `--demo`, not the real Playground Series S3E18 "
               "files.\nDownload the real data with: kaggle competitions download -c "
               "playground-series-s3e18 -p data/playground-series-s3e18\n")
