"""Synthetic hours in the layout of Kaggle's Bike Sharing Demand (train.csv, test.csv,
sampleSubmission.csv): rentals follow the commute peaks of working days, the afternoon of
days off, the weather and the season, and grow from the first year to the second; the
training rows are days 1-19 of each month, the test rows days 20-28, as on Kaggle. It is
demo data: the scores mean nothing on Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv, write_text


def _hours(days: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    when = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(24)])
    n = len(when)
    season = (when.month % 12 // 3) + 1
    workingday = (when.weekday < 5).astype(int)
    temp = 15 + 10 * np.sin((when.dayofyear - 100) / 365 * 2 * np.pi) + rng.normal(0, 3, n)
    return pd.DataFrame({
        "datetime": when.strftime("%Y-%m-%d %H:%M:%S"), "season": season,
        "holiday": (rng.random(n) < 0.03).astype(int), "workingday": workingday,
        "weather": rng.choice([1, 1, 1, 2, 2, 3], n), "temp": temp.round(2),
        "atemp": (temp + rng.normal(2, 1, n)).round(3), "humidity": rng.integers(20, 100, n),
        "windspeed": rng.gamma(2, 6, n).round(4)})


def _count(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    when = pd.to_datetime(frame["datetime"])
    hour, work = when.dt.hour.to_numpy(), frame["workingday"].to_numpy()
    commute = np.exp(-((hour - 8) ** 2) / 2) + np.exp(-((hour - 17.5) ** 2) / 3)
    leisure = np.exp(-((hour - 14) ** 2) / 12)
    base = 40 + 300 * np.where(work == 1, commute, 0.7 * leisure) + 60 * (hour > 6) * (hour < 23)
    base *= 1 + 0.6 * (when.dt.year.to_numpy() - when.dt.year.min())
    base *= np.clip(frame["temp"].to_numpy() / 25, 0.3, 1.3) / frame["weather"].to_numpy() ** 0.5
    return rng.poisson(base)


def make_demo(data_dir: Path, seed: int = 0) -> None:
    """Write the demo files into `data_dir` (each through a temporary name: kit.io)."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    days = pd.date_range("2011-01-01", "2012-12-28", freq="D")
    days = days[(days.day % 2 == 1) | (days.day >= 20)]  # every other day: a CPU-sized table
    train = _hours(days[days.day < 20], rng)
    test = _hours(days[days.day >= 20], rng)
    train["count"] = _count(train, rng)
    train["registered"] = (train["count"] * rng.uniform(0.6, 0.95, len(train))).astype(int)
    train["casual"] = train["count"] - train["registered"]
    write_csv(data_dir / "train.csv", train)
    write_csv(data_dir / "test.csv", test)
    write_csv(data_dir / "sampleSubmission.csv",
              pd.DataFrame({"datetime": test["datetime"], "count": 0}))
    write_text(data_dir / "DEMO_README.txt",
               "SYNTHETIC DEMO DATA written by `--demo`, not the real Bike Sharing Demand "
               "files.\nDownload the real data with: kaggle competitions download -c "
               "bike-sharing-demand -p data/bike-sharing-demand\n")
