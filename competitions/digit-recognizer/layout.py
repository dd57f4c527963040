"""Digit Recognizer files: train.csv (label, pixel0..pixel783), test.csv (pixel0..pixel783).

Test ids are the 1-based row numbers Kaggle's sample submission calls ImageId.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kit.config import DataConfig
from kit.data.images import ImageData, ImageSet
from kit.data.pixels import read_pixel_csv


def load(data: DataConfig, data_dir: Path, cache_dir: Path, *, shape=(1, 28, 28),
         classes=tuple(range(10))) -> ImageData:
    x, y = read_pixel_csv(data_dir / data.train, label=data.target, shape=shape,
                          classes=classes, cache_dir=cache_dir)
    x_test, _ = read_pixel_csv(data_dir / data.test, label=None, shape=shape, cache_dir=cache_dir)
    train = ImageSet(ids=np.arange(len(x)), labels=y, pixels=x)
    test = ImageSet(ids=np.arange(1, len(x_test) + 1), pixels=x_test)
    return ImageData(train, test, list(classes))
