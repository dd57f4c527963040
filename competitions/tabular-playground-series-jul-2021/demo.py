"""Synthetic hours in the layout of Kaggle's Tabular Playground Series July 2021 (train.csv,
test.csv, sample_submission.csv): air-quality sensor readings each hour, with three
pollutant levels to predict. A hidden traffic cycle (commute peaks on working days, a late
peak on weekends) and a slowly drifting dispersion (wind, mixing) drive the pollutants; five
metal-oxide sensors read them with noise and drift, and the weather sits beside them. The
test hours follow the training hours, as on Kaggle. It is demo data: the scores mean
nothing on Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv, write_text

TARGETS = ["target_carbon_monoxide", "target_benzene", "target_nitrogen_oxides"]
N_TRAIN, N_TEST = 3000, 720  # hours: 125 days of training, the next 30 days to predict


def _traffic(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    commute = np.exp(-((hour - 8) ** 2) / 3) + 0.9 * np.exp(-((hour - 19) ** 2) / 4)
    weekend = 0.6 * np.exp(-((hour - 13) ** 2) / 18)
    return 0.25 + np.where(weekday < 5, commute, weekend)


def _hours(n: int, rng: np.random.Generator) -> pd.DataFrame:
    when = pd.date_range("2010-03-10 18:00", periods=n, freq="h")
    hour, weekday = when.hour.to_numpy(), when.weekday.to_numpy()
    day = (when - when[0]) / pd.Timedelta(days=1)
    drift = np.cumsum(rng.normal(0, 0.12, n))  # dispersion: a random walk pulled back to 0
    dispersion = np.exp(0.5 * np.tanh(drift - pd.Series(drift).rolling(48, 1).mean()))
    deg_c = (18 + 9 * np.sin((np.asarray(day) - 40) / 365 * 2 * np.pi)
             + 5 * np.sin((hour - 9) / 24 * 2 * np.pi) + rng.normal(0, 2, n))
    rel = np.clip(75 - 1.4 * (deg_c - 15) + rng.normal(0, 8, n), 9, 90)
    saturation = 6.112 * np.exp(17.67 * deg_c / (deg_c + 243.5)) * 2.1674 / (273.15 + deg_c)
    return pd.DataFrame({
        "date_time": when.strftime("%Y-%m-%d %H:%M:%S"), "deg_C": deg_c.round(1),
        "relative_humidity": rel.round(1),
        "absolute_humidity": (rel * saturation / 10).round(4),  # the dataset's scale
        "_traffic": _traffic(hour, weekday) * dispersion})


def _pollutants(frame: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n, level = len(frame), frame["_traffic"].to_numpy()
    co = 2.2 * level * np.exp(rng.normal(0, 0.18, n))
    benzene = 4.5 * co ** 1.25 * np.exp(rng.normal(0, 0.12, n))
    return {"target_carbon_monoxide": co.round(1).clip(0.1),
            "target_benzene": benzene.round(1).clip(0.1),
            "target_nitrogen_oxides": (180 * level ** 1.1 * (1 + 0.02 * (20 - frame["deg_C"]))
                                       * np.exp(rng.normal(0, 0.25, n))).round(1).clip(2)}


def _sensors(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    n, level = len(frame), frame["_traffic"].to_numpy()
    co, benzene, nox = (frame[c].to_numpy() for c in TARGETS)
    rel = frame["relative_humidity"].to_numpy()

    def noise(scale: float) -> np.ndarray:
        return rng.normal(0, scale, n)

    return frame.assign(
        sensor_1=(750 + 260 * co ** 0.6 + noise(60)).round(1),        # CO
        sensor_2=(450 + 330 * benzene ** 0.4 + noise(50)).round(1),   # hydrocarbons
        sensor_3=(1900 / (1 + nox / 250) + 350 + noise(90)).round(1),  # NOx, falling with it
        sensor_4=(1100 + 4 * rel + 1.5 * nox ** 0.9 + noise(120)).round(1),  # NO2 and humidity
        sensor_5=(600 + 500 * level ** 0.8 + noise(150)).round(1))    # O3: the cycle only


def make_demo(data_dir: Path, seed: int = 0) -> None:
    """Write the demo files into `data_dir` (each through a temporary name: kit.io)."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    hours = _hours(N_TRAIN + N_TEST, rng)
    hours = _sensors(hours.assign(**_pollutants(hours, rng)), rng)
    columns = ["date_time", "deg_C", "relative_humidity", "absolute_humidity",
               *[f"sensor_{k}" for k in range(1, 6)]]
    train, test = hours.iloc[:N_TRAIN], hours.iloc[N_TRAIN:]
    write_csv(data_dir / "train.csv", train[columns + TARGETS])
    write_csv(data_dir / "test.csv", test[columns])
    write_csv(data_dir / "sample_submission.csv",
              pd.DataFrame({"date_time": test["date_time"], **{t: 2.0 for t in TARGETS}}))
    write_text(data_dir / "DEMO_README.txt",
               "SYNTHETIC DEMO DATA written by `--demo`, not the real Tabular Playground "
               "Series July 2021 files.\nDownload the real data with: kaggle competitions "
               "download -c tabular-playground-series-jul-2021 -p "
               "data/tabular-playground-series-jul-2021\n")
