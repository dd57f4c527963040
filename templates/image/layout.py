"""Where __SLUG__'s images and labels are: load(...) -> ImageData (kit/data/images.py).

This reads the most common Kaggle image layout; rewrite it for another one (see
competitions/mask/layout.py for images in per-person folders):

    train.csv              id,label            (data.train, data.id, data.target)
    train/<id>.<ext>       one image per row   (data.params.train_dir)
    test/<id>.<ext>        one image per id of sample_submission.csv
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kit.config import DataConfig
from kit.data.csv import read_csv
from kit.data.images import ImageData, ImageSet
from kit.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _paths(folder: Path, ids) -> np.ndarray:
    found = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS} \
        if folder.is_dir() else {}
    missing = [str(i) for i in ids if str(i) not in found]
    if missing:
        raise DataError(f"{folder}: no image for ids {missing[:5]} ({len(missing)} missing); "
                        "check data.params.train_dir / test_dir in config.toml")
    return np.array([found[str(i)] for i in ids], dtype=object)


def load(data: DataConfig, data_dir: Path, cache_dir: Path, *, train_dir: str = "train",
         test_dir: str = "test", problem: str = "classification") -> ImageData:
    """`problem` comes from competition.problem: a regression's labels are the target values."""
    table = read_csv(data_dir / data.train, required=[data.id, data.target], what="train")
    test = read_csv(data_dir / data.test, required=[data.id], what="test ids")
    if problem == "regression":
        classes, labels = [], table[data.target].to_numpy()
    else:
        classes = sorted(table[data.target].unique().tolist())
        labels = np.searchsorted(np.array(classes, dtype=object),
                                 table[data.target].to_numpy()).astype(np.int64)
    return ImageData(
        ImageSet(ids=table[data.id].to_numpy(), labels=labels,
                 paths=_paths(data_dir / train_dir, table[data.id])),
        ImageSet(ids=test[data.id].to_numpy(), paths=_paths(data_dir / test_dir, test[data.id])),
        classes)
