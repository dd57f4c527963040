"""Feature engineering for __SLUG__: transform_batch(frame) -> frame (live below), and the
optional hooks this doc shows.

transform_batch runs on one slice of rows at a time, train and test alike, so it works for
a table of any size, also out of core (docs/out-of-core.md). build(train,
test) -> (train, test) gets both frames whole, once before the folds are made; it is
refused for a table streamed out of core. Add columns here and list them in config.toml
under [features] numeric / categorical. Use only statistics that need no labels (the
folds are made afterwards, so anything fitted on the target here would leak). Keep the
target column in train and the row order of both frames.

Features that use labels (group target rates, custom target encodings) go in an optional
fold_features(fit, frame) -> DataFrame: `fit` holds rows with labels, `frame` the rows to
compute new columns for (no target column); return only the new columns, indexed like
`frame`. The kit calls it inside each fold so no row ever sees its own label:

    def fold_features(fit, frame):
        rate = fit.groupby("city")["target"].mean()
        return pd.DataFrame({"city_rate": frame["city"].map(rate)}, index=frame.index)

For a table too big for build(train, test) (it gets both whole), or simply for
features that need no other row, write transform_batch(frame) -> frame instead: called
on one slice of rows at a time (65,536), train and test alike, without the target
column; return the same rows, in order, with the new columns added. Use build() when a
feature needs other rows (group counts over train and test, ranks), transform_batch()
when each row's features come from that row alone:

    def transform_batch(frame):
        frame = frame.copy()
        frame["ratio"] = frame["a"] / (frame["b"] + 1)
        return frame

Two more optional hooks change a fold's training rows only (never validation rows):
keep_train_rows(frame) -> bool mask (drop outliers) and extra_train_rows(fit) -> DataFrame
(labelled rows to add, e.g. a Playground episode's original dataset, with the target and
every feature column).

    def build(train, test):
        for frame in (train, test):
            frame["ratio"] = frame["a"] / (frame["b"] + 1)
        return train, test
"""

from __future__ import annotations

import pandas as pd


def transform_batch(frame: pd.DataFrame) -> pd.DataFrame:
    return frame
