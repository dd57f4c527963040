"""Pixel-CSV images (Kaggle digit-recognizer) and device-resident tensor batches.

A pixel CSV (`label,pixel0..pixel783`) is parsed once with pandas' pyarrow engine into
uint8 N x C x H x W and cached as .npy; batches are sliced from one uint8 tensor that lives
on the training device (4x smaller than float32) and normalized there. For MNIST-sized
data this replaces the DataLoader entirely (tuomaso/train_mnist_fast: ~75% of a run was
DataLoader overhead).

    x, y = read_pixel_csv(Path("train.csv"), label="label", shape=(1, 28, 28), classes=range(10))
    batches = DeviceBatches(x, y, 128, shuffle=True, seed=0, device="cuda", augment=RandomAffine())
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from kit.data.batches import TensorBatches, target_array
from kit.errors import DataError
from kit.io import atomic_path, file_stamp


def read_pixel_csv(path: Path, *, label: str | None, shape: Sequence[int] = (1, 28, 28),
                   classes: Sequence | None = None, cache_dir: Path | None = None):
    """(pixels uint8 N x C x H x W, labels int64 class index or None) from a pixel CSV.

    `label` names the label column (None for a test file); every other column is a pixel.
    Labels are mapped to their position in `classes`; a label outside them is a DataError."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"pixel CSV {path} is missing or empty; download the competition data")
    cached = _cache_paths(path, cache_dir, label, shape) if cache_dir else None
    if cached and cached[0].exists():
        y = np.load(cached[1]) if label else None
        x = np.load(cached[0])
        return x, (None if y is None else _encode(y, classes, path))
    frame = _parse(path, int(np.prod(shape)), label)
    raw_y = frame.pop(label).to_numpy() if label else None
    values = frame.to_numpy()
    _check_values(values, path)
    x = values.astype(np.uint8).reshape(len(values), *shape)
    y = None if raw_y is None else _encode(raw_y, classes, path)
    if cached:  # labels first: the pixels file marks a complete cache
        if raw_y is not None:
            save_npy(cached[1], raw_y)
        save_npy(cached[0], x)
    return x, y


def _cache_paths(path: Path, cache_dir: Path, label, shape) -> tuple[Path, Path]:
    key = hashlib.sha1(f"{file_stamp(path.resolve())}|{label}|{tuple(shape)}"
                       .encode()).hexdigest()[:12]
    stem = Path(cache_dir) / f"{path.stem}-{key}"
    return stem.with_suffix(".x.npy"), stem.with_suffix(".y.npy")


def save_npy(dest: Path, array: np.ndarray) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _parse(path: Path, n_pixels: int, label: str | None) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, engine="pyarrow")
    except Exception as exc:  # pyarrow's ArrowInvalid / pandas ParserError: find the row
        line, fields = _first_bad_line(path)
        where = f"line {line} has {fields} fields where the header has more/fewer" if line else exc
        raise DataError(f"{path}: {where}; the file is malformed (a truncated download?); "
                        "download it again") from None
    if label is not None and label not in frame.columns:
        raise DataError(f"{path} has no label column {label!r} (first columns: "
                        f"{list(frame.columns)[:5]}); set data.target in config.toml")
    found = frame.shape[1] - (label is not None)
    if found != n_pixels:
        raise DataError(f"{path}: {found} pixel columns, expected {n_pixels} (data.params.shape); "
                        "wrong file, or fix data.params.shape")
    bad = frame.isna().any(axis=1).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        count = int(frame.iloc[row].notna().sum()) - (label is not None)
        raise DataError(f"{path}: row {row} (line {row + 2}) has {count} pixel values, expected "
                        f"{n_pixels}; fix or drop that row")
    return frame


def _first_bad_line(path: Path) -> tuple[int, int] | tuple[None, None]:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        width = len(next(reader, []))
        for line, row in enumerate(reader, start=2):
            if len(row) != width:
                return line, len(row)
    return None, None


def _check_values(values: np.ndarray, path: Path) -> None:
    if not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{path}: non-numeric pixel values; every pixel must be 0..255")
    bad_cells = (values < 0) | (values > 255) | (values != np.round(values))
    bad = bad_cells.any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        col = int(np.flatnonzero(bad_cells[row])[0])
        raise DataError(f"{path}: row {row} (line {row + 2}) pixel {col} = {_plain(values[row, col])!r}; "
                        "pixels must be integers 0..255; fix that row")


def _plain(value):
    """A numpy scalar as the Python value users wrote (11, not np.int64(11))."""
    return value.item() if hasattr(value, "item") else value


def _encode(raw: np.ndarray, classes: Sequence | None, path: Path) -> np.ndarray:
    classes = list(classes) if classes is not None else sorted(np.unique(raw).tolist())
    codes = pd.Index(classes).get_indexer(raw)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"{path}: row {row} (line {row + 2}) has label {_plain(raw[row])!r}, not one of "
                        f"the classes {classes}; fix the row or data.params.classes")
    return codes.astype(np.int64)


def match_channels(x: np.ndarray, channels: int, what: str = "images") -> np.ndarray:
    """uint8 N x C x H x W with C = `channels`: gray is repeated to RGB, RGB averaged to
    gray with the ITU-R 601 luma weights (what OpenCV's IMREAD_GRAYSCALE uses)."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1:
        return np.repeat(x, channels, axis=1)
    if have in (3, 4) and channels == 1:
        luma = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), x[:, :3], axes=(0, 1))
        return np.clip(luma.round(), 0, 255).astype(np.uint8)[:, None]
    if have == 4 and channels == 3:
        return x[:, :3]
    raise DataError(f"{what} have {have} channels, image.channels = {channels}; set "
                    "image.channels to 1 (gray) or 3 (RGB)")


class RandomAffine:
    """Batch-wise random rotation / scale / shift (and optional h-flip) on the device, via
    F.affine_grid + F.grid_sample; applied to [0, 1] images so zero padding is background.

    Defaults follow the MNIST augmentation grid in cdeotte/MNIST-CNN-99.75 (rotation 10 deg,
    zoom 10%, shift 10% gave the best single-CNN accuracy)."""

    def __init__(self, degrees: float = 10.0, scale: float = 0.1, translate: float = 0.1,
                 hflip: float = 0.0, p: float = 1.0):
        self.degrees, self.scale, self.translate, self.hflip, self.p = degrees, scale, translate, hflip, p

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = x.shape[0]

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return torch.rand(n, generator=gen) * (hi - lo) + lo

        angle = uniform(-self.degrees, self.degrees) * math.pi / 180
        s = uniform(1 - self.scale, 1 + self.scale)
        flip = torch.where(torch.rand(n, generator=gen) < self.hflip, -1.0, 1.0)
        on = (torch.rand(n, generator=gen) < self.p).float()
        # theta maps output to input coordinates in [-1, 1]; 1/s zooms in by s.
        cos, sin = torch.cos(angle * on) / s ** on, torch.sin(angle * on) / s ** on
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
        theta[:, 0, 2] = uniform(-2 * self.translate, 2 * self.translate) * on
        theta[:, 1, 2] = uniform(-2 * self.translate, 2 * self.translate) * on
        theta = theta.to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class DeviceBatches(TensorBatches):
    """Shuffled batches of uint8 images held on `device`, normalized (and augmented) there.

    Yields {"x": float32 normalized, "y": int64 class or float32 regression target (when
    labels are given), "index": int64}.
    `index` defaults to 0..N-1 (pass global row ids to map predictions back). Order, epochs
    and DDP sharding as TensorBatches (kit/data/batches.py)."""

    def __init__(self, x_uint8, y, batch_size: int, shuffle: bool, seed: int, device,
                 augment: Callable | None = None, *, mean: Sequence[float] = (0.5,),
                 std: Sequence[float] = (0.5,), index=None, drop_last: bool = False):
        labels = None if y is None else target_array(y)
        super().__init__({"x": x_uint8, "y": labels, "index": index}, batch_size,
                         shuffle=shuffle, seed=seed, device=device, drop_last=drop_last)
        self.augment = augment
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(shape)

    def finish(self, batch: dict, generator: torch.Generator) -> dict:
        x = batch["x"].float().div_(255)
        if self.augment is not None:
            x = self.augment(x, generator)
        batch["x"] = (x - self.mean) / self.std
        return batch


def cache_root(data_dir: Path, fallback: Path) -> Path:
    """`data_dir/.kit_cache` when the data folder is writable (reused across runs), else
    `fallback` (read-only inputs such as /kaggle/input)."""
    own = Path(data_dir) / ".kit_cache"
    if os.access(data_dir, os.W_OK):
        own.mkdir(exist_ok=True)
        return own
    Path(fallback).mkdir(parents=True, exist_ok=True)
    return Path(fallback)
