"""Image datasets: image files (OpenCV decode + albumentations) and TTA.

Pixel-CSV data and device-resident batches live in kit/data/pixels.py and are re-exported
here. Unreadable train images (zero bytes, no image header) are found cheaply when the
dataset is made (a 16-byte header read per file), skipped with one warning, and are an
error past `max_bad_fraction`.

    ok = check_images(paths, max_bad_fraction=0.01, what="train")
    ds = ImageFileDataset(paths[ok], labels[ok], build_transforms((256, 192), train=True))
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from kit.data.batches import target_array
from kit.data.pixels import DeviceBatches, RandomAffine, cache_root, match_channels, read_pixel_csv, save_npy  # noqa: F401
from kit.errors import ConfigError, DataError
from kit.io import file_stamp
from kit.objective import check_target

# OpenCV's own thread pool does not survive fork(): a DataLoader worker forked after the
# parent resized an image in parallel can hang forever in its first cv2 call. Parallelism
# comes from DataLoader workers and decode_all's threads instead.
cv2.setNumThreads(0)

# Leading bytes of the formats OpenCV decodes here (WebP: RIFF....WEBP).
MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"BM": "bmp",
         b"II*\x00": "tiff", b"MM\x00*": "tiff"}
AUGMENT_KEYS = {"hflip": 0.5, "affine": 0.5, "rotate": 10.0, "scale": 0.1, "translate": 0.06,
                "brightness_contrast": 0.2, "extra": ()}


def image_kind(path: str | Path) -> str | None:
    """'jpeg' / 'png' / ... from the file's first bytes; None when empty or not an image."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)


def check_images(paths: Sequence, *, max_bad_fraction: float = 0.01, what: str = "train") -> np.ndarray:
    """Boolean mask of readable-looking images; warn about the rest, error past the fraction."""
    ok = np.array([image_kind(p) is not None for p in paths], dtype=bool)
    bad = np.flatnonzero(~ok)
    if len(bad):
        names = ", ".join(str(paths[i]) for i in bad[:3])
        fraction = len(bad) / max(len(paths), 1)
        message = (f"{len(bad)} of {len(paths)} {what} images are empty or not images "
                   f"({fraction:.1%}; e.g. {names})")
        if fraction > max_bad_fraction:
            raise DataError(f"{message}: more than image.max_bad_fraction = "
                            f"{max_bad_fraction}; re-download or repair the image folder")
        warnings.warn(f"{message}; they are skipped", stacklevel=2)
    return ok


def read_image(path: str | Path, channels: int = 3, reduce: int = 1) -> np.ndarray:
    """H x W x C uint8 RGB (or H x W x 1 gray). np.fromfile + imdecode reads any path
    (cv2.imread fails on non-ASCII paths on Windows); `reduce` 2 or 4 decodes a JPEG at
    1/reduce scale in the DCT domain, much faster when the target is small."""
    flags = {(3, 1): cv2.IMREAD_COLOR, (1, 1): cv2.IMREAD_GRAYSCALE,
             (3, 2): cv2.IMREAD_REDUCED_COLOR_2, (1, 2): cv2.IMREAD_REDUCED_GRAYSCALE_2,
             (3, 4): cv2.IMREAD_REDUCED_COLOR_4, (1, 4): cv2.IMREAD_REDUCED_GRAYSCALE_4}
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:  # missing or unreadable: the caller's skip / blank policy applies
        raise DataError(f"cannot read image {path} ({exc.strerror or exc}); restore the file "
                        "or re-download the data") from None
    img = cv2.imdecode(data, flags[(channels, reduce)]) if data.size else None
    if img is None:
        raise DataError(f"cannot decode image {path}; it is corrupt or not an image "
                        "(delete it, or re-download the data)")
    if channels == 1:
        return img[:, :, None]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def reduce_factor(path: str | Path, size: Sequence[int]) -> int:
    """Largest JPEG decode reduction (1, 2, 4) that keeps the image >= size (h, w)."""
    if image_kind(path) != "jpeg":
        return 1
    h, w = read_image(path, 1).shape[:2]
    for f in (4, 2):
        if h // f >= size[0] and w // f >= size[1]:
            return f
    return 1


def augment_settings(augment: dict | None) -> dict:
    """image.augment merged over the defaults; an unknown key lists the valid ones."""
    unknown = sorted(set(augment or {}) - set(AUGMENT_KEYS))
    if unknown:
        raise ConfigError(f"image.augment: unknown keys {unknown}; valid: "
                          f"{', '.join(AUGMENT_KEYS)}")
    return {**AUGMENT_KEYS, **(augment or {})}


def build_transforms(size: Sequence[int], *, train: bool, mean: Sequence[float],
                     std: Sequence[float], augment: dict | None = None, seed: int | None = None):
    """albumentations pipeline: Resize (any input size) [+ flip, affine, colour] + Normalize."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    aug = augment_settings(augment)
    steps = [A.Resize(int(size[0]), int(size[1]))]
    if train:
        if aug["hflip"]:
            steps.append(A.HorizontalFlip(p=aug["hflip"]))
        if aug["affine"]:
            t, s = aug["translate"], aug["scale"]
            steps.append(A.Affine(scale=(1 - s, 1 + s), translate_percent=(-t, t),
                                  rotate=(-aug["rotate"], aug["rotate"]), p=aug["affine"]))
        if aug["brightness_contrast"]:
            steps.append(A.RandomBrightnessContrast(p=aug["brightness_contrast"]))
        steps += [_extra(spec) for spec in aug["extra"]]
    steps += [A.Normalize(mean=tuple(mean), std=tuple(std)), ToTensorV2()]
    return A.Compose(steps, seed=seed)


def _extra(spec: dict):
    """One more albumentations transform from config: {name = "CLAHE", p = 0.2, ...}."""
    import albumentations as A

    spec = dict(spec)
    name = spec.pop("name", None)
    if not name or not hasattr(A, name):
        raise ConfigError(f"image.augment.extra: {name!r} is not an albumentations "
                          "transform (e.g. {name = \"CLAHE\", p = 0.2})")
    try:
        return getattr(A, name)(**spec)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"image.augment.extra {name}: {exc}") from None


class ImageFileDataset(torch.utils.data.Dataset):
    """Image files -> {"x": C x H x W float, "y", "index"} through an albumentations pipeline.

    albumentations' Compose keeps its own RNG, which DataLoader copies into every worker:
    without reseeding, all workers (and every epoch of non-persistent workers) would draw
    the same augmentations. Each worker reseeds from its torch seed, which differs per
    worker and per epoch.

    A file that passes check_images but does not decode (a truncated JPEG): on_error
    "skip" serves the next readable image instead and warns once per file (train),
    "blank" a black image (test: every row needs a prediction), "raise" a DataError."""

    def __init__(self, paths: Sequence, labels=None, transform: Callable | None = None, *,
                 channels: int = 3, index=None, reduce: int = 1, on_error: str = "raise"):
        if on_error not in ("raise", "skip", "blank"):
            raise ValueError(f"on_error = {on_error!r}; valid: raise, skip, blank")
        self.paths = [str(p) for p in paths]
        self.labels = None if labels is None else target_array(labels)
        self.index = np.arange(len(self.paths)) if index is None else np.asarray(index)
        self.transform, self.channels, self.reduce = transform, channels, reduce
        self.on_error, self.bad = on_error, set()
        self._worker_seed = None

    def __len__(self) -> int:
        return len(self.paths)

    def _reseed(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            if hasattr(self.transform, "set_random_seed"):
                self.transform.set_random_seed(info.seed % 2**32)

    def _read(self, i: int) -> tuple[int, np.ndarray]:
        for j in (*range(i, len(self)), *range(i)):  # "skip": the next readable image
            try:
                return j, read_image(self.paths[j], self.channels, self.reduce)
            except DataError as exc:
                if self.on_error == "raise":
                    raise
                if self.paths[j] not in self.bad:
                    self.bad.add(self.paths[j])
                    fate = "skipped" if self.on_error == "skip" else "predicted as a blank image"
                    warnings.warn(f"{exc}; {fate}", stacklevel=3)
                if self.on_error == "blank":
                    return i, np.zeros((32, 32, self.channels), np.uint8)  # Resize fixes the size
        raise DataError(f"none of the {len(self)} images decodes (first: {self.paths[0]})")

    def __getitem__(self, i: int) -> dict:
        self._reseed()
        j, img = self._read(i)
        x = self.transform(image=img)["image"] if self.transform else torch.from_numpy(
            np.ascontiguousarray(img.transpose(2, 0, 1)))
        item = {"x": x, "index": torch.tensor(self.index[j], dtype=torch.int64)}
        if self.labels is not None:
            item["y"] = torch.tensor(self.labels[j])
        return item


def decode_all(paths: Sequence, size: Sequence[int], *, channels: int = 3, threads: int = 0,
               cache_dir: Path | None = None) -> np.ndarray:
    """All images decoded once and resized to `size` (h, w): uint8 N x C x H x W, cached as
    .npy when cache_dir is given (keyed by the paths and each file's size and mtime, so an
    edited image is decoded again); a blank image stands in for an unreadable one (test)."""
    h, w = int(size[0]), int(size[1])
    dest = None
    if cache_dir:
        stamp = hashlib.sha1()
        for path in paths:  # a missing file is decoded as a blank, keyed as missing
            stamp.update(f"{file_stamp(path)}\n".encode())
        dest = Path(cache_dir) / f"decoded-{stamp.hexdigest()[:12]}-{len(paths)}-{h}x{w}x{channels}.npy"
    if dest is not None and dest.exists():
        return np.load(dest)
    reduce = reduce_factor(paths[0], (h, w)) if len(paths) else 1

    def one(path) -> np.ndarray:
        try:
            img = read_image(path, channels, reduce)
        except DataError:
            return np.zeros((channels, h, w), np.uint8)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, channels)
        return img.transpose(2, 0, 1)

    # cv2 releases the GIL while decoding, so threads scale without worker processes.
    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        out = np.stack(list(pool.map(one, paths))) if len(paths) else np.zeros((0, channels, h, w), np.uint8)
    if dest is not None:
        save_npy(dest, out)
    return out


# --- test-time augmentation --------------------------------------------------------------


def tta_transforms(names: Sequence[str], shift: int = 2) -> list[Callable]:
    """Identity plus each named view: "hflip" (not for digits: a flipped 2 is no digit),
    "shift" (four shifts of `shift` px, edge-replicated)."""
    views: list[Callable] = [lambda x: x]
    for name in names:
        if name == "hflip":
            views.append(lambda x: torch.flip(x, dims=[3]))
        elif name == "shift":
            views += [_shifter(dx, dy, shift) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        else:
            raise ConfigError(f"image.tta: unknown view {name!r}; valid: hflip, shift")
    return views


def _shifter(dx: int, dy: int, s: int) -> Callable:
    def shift(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (s, s, s, s), mode="replicate")
        top, left = s - dy * s, s - dx * s
        return padded[..., top:top + h, left:left + w]

    return shift


TTA_OUTPUTS = ("classes", "labels", "values")


def _proba(logits: torch.Tensor, outputs: str = "classes") -> torch.Tensor:
    """What kit.objective predicts from a head's outputs: "classes" a sigmoid for one logit
    (binary, BCE), else a softmax; "labels" a sigmoid per output (several 0/1 targets);
    "values" the outputs as they are (several numbers)."""
    logits = logits.float()
    if outputs == "values":
        return logits
    if outputs == "labels" or logits.shape[1] == 1:
        return logits.sigmoid()
    return logits.softmax(1)


@torch.no_grad()
def tta_predict(model: torch.nn.Module, x: torch.Tensor, transforms: Sequence[Callable],
                outputs: str = "classes") -> torch.Tensor:
    """Mean probability over the views: (N, C), or (N, 1) positive-class for one logit
    (`outputs`: see _proba)."""
    return torch.stack([_proba(model(t(x)), outputs) for t in transforms]).mean(0)


class TTAModel(torch.nn.Module):
    """Wraps a model so forward returns logits of the mean TTA probability (log p for
    softmax heads, logit p for sigmoid outputs, the mean itself for "values"):
    kit.training.trainer.Trainer.predict then yields the averaged probabilities unchanged."""

    def __init__(self, model: torch.nn.Module, transforms: Sequence[Callable],
                 outputs: str = "classes"):
        super().__init__()
        if outputs not in TTA_OUTPUTS:
            raise ValueError(f"outputs = {outputs!r}; valid: {', '.join(TTA_OUTPUTS)}")
        self.model, self.transforms, self.outputs = model, list(transforms), outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = tta_predict(self.model, x, self.transforms, self.outputs)
        if self.outputs == "values":
            return p
        if self.outputs == "labels" or p.shape[1] == 1:
            return torch.logit(p, eps=1e-7)
        return p.clamp_min(1e-12).log()


# --- what a competition's layout.py hook returns -----------------------------------------


@dataclass
class ImageSet:
    """One split: ids, and either image file paths or uint8 N x C x H x W pixels."""

    ids: np.ndarray
    # train: a class index or regression value per image, or a DataFrame of label columns
    # (the kit takes data.target's, and every target's under several targets: label_columns);
    # None (test)
    labels: np.ndarray | pd.DataFrame | None = None
    groups: np.ndarray | None = None  # e.g. person id: folds never split a group
    paths: np.ndarray | None = None
    pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class ImageData:
    train: ImageSet
    test: ImageSet
    classes: list  # class index -> original label (what the submission writes); labels in a
    # DataFrame bring their own (each column's sorted values)


def label_columns(labels: pd.DataFrame, columns: Sequence[str], problem: str,
                  source: str) -> tuple[np.ndarray, list[list]]:
    """`columns` of a labels DataFrame as (N, T) class codes (each column's sorted values:
    0/1 stay 0/1), or float64 values under a regression; and each column's classes.

        y, classes = label_columns(frame, ["cat", "dog"], "classification", "layout.py")"""
    missing = [c for c in columns if c not in labels.columns]
    if missing:
        raise DataError(f"{source}: the train labels load() returned have no column(s) "
                        f"{missing} (data.target); their columns: {list(labels.columns)[:12]}: "
                        "fix data.target in config.toml, or the labels CSV")
    for column in columns:
        check_target(problem, labels[column], column, source)
        if labels[column].isna().any():
            rows = np.flatnonzero(labels[column].isna())[:5].tolist()
            raise DataError(f"{source}: label {column!r} is missing in rows {rows}; fill or "
                            "drop those rows in the labels CSV")
    if problem == "regression":
        return labels[list(columns)].to_numpy(np.float64), [[] for _ in columns]
    coded = [pd.factorize(labels[c], sort=True) for c in columns]
    return (np.column_stack([codes for codes, _ in coded]).astype(np.int64),
            [list(np.asarray(uniques).tolist()) for _, uniques in coded])
