"""Synthetic face-mask data in the competition's real layout (see layout.py).

Drawn faces, not photos: an ellipse face (skin tone by race); a band over nose and mouth
= mask worn, a band below the nose = worn incorrectly, none = no mask; long hair at the
sides = female, short = male; hair grey and forehead lines grow with age. Every person
gets 7 images (mask1-5 in different mask colours, incorrect_mask, normal) with small
random shifts, so the 18 classes are learnable. Demo data: scores mean nothing for the
real competition.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from kit.io import atomic_path, write_csv, write_text

H, W = 128, 96  # portrait, like the real 512 x 384 photos
SKIN = {"Asian": (170, 200, 230), "White": (190, 210, 240), "Black": (60, 90, 130)}  # BGR
MASK_COLOURS = [(235, 235, 235), (200, 120, 40), (40, 40, 40), (180, 170, 240), (90, 160, 90)]
STEMS = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"]


def draw_face(rng: np.random.Generator, *, gender: str, race: str, age: int, mask: int,
              mask_colour=(235, 235, 235)) -> np.ndarray:
    """One BGR face image; mask 0 worn / 1 incorrect / 2 none."""
    img = np.full((H, W, 3), rng.integers(90, 200, 3), np.uint8)
    cx, cy = W // 2 + int(rng.integers(-5, 6)), H // 2 + int(rng.integers(-5, 6))
    grey = np.clip((age - 20) / 50, 0, 1)  # hair greys from 20 to 70
    hair = tuple(int(v) for v in (1 - grey) * np.array([30, 40, 60]) + grey * np.array([200, 200, 200]))
    if gender == "female":  # long hair falls beside the face
        cv2.rectangle(img, (cx - 34, cy - 30), (cx + 34, cy + 44), hair, -1)
    skin = tuple(int(v + rng.integers(-15, 16)) for v in SKIN[race])
    cv2.ellipse(img, (cx, cy), (27, 37), 0, 0, 360, skin, -1)
    cv2.ellipse(img, (cx, cy - 28), (28, 14), 0, 180, 360, hair, -1)  # hair on top
    for k in range(int(age >= 30) + 2 * int(age >= 60)):  # forehead lines: 0, 1, 3
        y = cy - 20 + 4 * k
        cv2.line(img, (cx - 12, y), (cx + 12, y), (80, 80, 110), 1)
    for dx in (-11, 11):
        cv2.circle(img, (cx + dx, cy - 8), 3, (30, 30, 30), -1)
    cv2.line(img, (cx, cy - 4), (cx - 3, cy + 6), (90, 110, 150), 2)  # nose
    cv2.line(img, (cx - 9, cy + 17), (cx + 9, cy + 17), (60, 60, 170), 2)  # mouth
    if mask == 0:
        cv2.rectangle(img, (cx - 26, cy), (cx + 26, cy + 30), mask_colour, -1)
    elif mask == 1:
        cv2.rectangle(img, (cx - 26, cy + 12), (cx + 26, cy + 32), mask_colour, -1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _people(n: int, rng: np.random.Generator, start: int) -> pd.DataFrame:
    gender = rng.choice(["male", "female"], n)
    race = rng.choice(list(SKIN), n)
    age = rng.choice(np.r_[18:30, 30:60, 60:75], n)  # each age bin well represented
    ids = [f"{start + i:06d}" for i in range(n)]
    return pd.DataFrame({"id": ids, "gender": gender, "race": race, "age": age,
                         "path": [f"{i}_{g}_{r}_{a}" for i, g, r, a in zip(ids, gender, race, age)]})


def _faces(person, rng):
    for k, stem in enumerate(STEMS):
        mask = 0 if k < 5 else (1 if stem == "incorrect_mask" else 2)
        colour = MASK_COLOURS[k % len(MASK_COLOURS)]
        yield stem, draw_face(rng, gender=person.gender, race=person.race, age=int(person.age),
                              mask=mask, mask_colour=colour)


def _write_jpg(dest: Path, img: np.ndarray) -> None:
    """JPEG quality 90 through a temporary name (cv2.imwrite picks the format from the
    name's extension, so the bytes are encoded first)."""
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {dest}")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data.tobytes())


def make_demo(data_dir: Path, seed: int = 0, n_people: int = 48, n_eval_people: int = 16) -> None:
    """Write the demo files into `data_dir`, each through a temporary name (kit.io): an
    interrupted demo never leaves a half file that a later run (or --data DIR) trusts."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    train = _people(n_people, rng, 1)
    for person in train.itertuples():
        folder = data_dir / "train" / "images" / person.path
        for stem, img in _faces(person, rng):
            _write_jpg(folder / f"{stem}.jpg", img)
    write_csv(data_dir / "train" / "train.csv", train)
    names = []
    (data_dir / "eval" / "images").mkdir(parents=True, exist_ok=True)
    for person in _people(n_eval_people, rng, 900001).itertuples():
        for stem, img in _faces(person, rng):
            name = hashlib.sha1(f"{seed}/{person.path}/{stem}".encode()).hexdigest() + ".jpg"
            _write_jpg(data_dir / "eval" / "images" / name, img)
            names.append(name)
    order = rng.permutation(len(names))
    write_csv(data_dir / "eval" / "info.csv",
              pd.DataFrame({"ImageID": np.asarray(names)[order], "ans": 0}))
    write_text(
        data_dir / "DEMO_README.txt",
        "SYNTHETIC DEMO DATA written by `--demo`: drawn faces in the mask competition's layout\n"
        "(train/train.csv, train/images/<person>/{mask1..5,incorrect_mask,normal}.jpg,\n"
        "eval/info.csv, eval/images/). Not real photos; scores mean nothing for the real task.\n")
