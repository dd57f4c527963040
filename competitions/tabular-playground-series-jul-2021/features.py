"""Tabular Playground Series July 2021 features: the calendar of each row's date_time
(row-local, so transform_batch: it runs slice by slice, train and test alike, also out of
core). Traffic, the pollutants' source, follows the hour and the working week."""

from __future__ import annotations

import pandas as pd


def transform_batch(frame: pd.DataFrame) -> pd.DataFrame:
    when = pd.to_datetime(frame["date_time"])
    return frame.assign(hour=when.dt.hour, weekday=when.dt.weekday,
                        working_day=(when.dt.weekday < 5).astype(int))
