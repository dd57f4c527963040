"""Bike Sharing Demand features: the calendar of each row's datetime (row-local, so
transform_batch: it runs slice by slice, train and test alike, also out of core)."""

from __future__ import annotations

import pandas as pd


def transform_batch(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    when = pd.to_datetime(frame["datetime"])
    frame["hour"] = when.dt.hour
    frame["weekday"] = when.dt.weekday
    frame["month"] = when.dt.month
    frame["year"] = when.dt.year
    return frame
