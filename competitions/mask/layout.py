"""Face-mask competition layout (Boostcamp AI Tech stage 1; not on Kaggle).

    train/train.csv                       id,gender,race,age,path (one row per person)
    train/images/<path>/mask1..mask5.jpg  worn mask        -> mask 0
                       /incorrect_mask.*  incorrectly worn -> mask 1
                       /normal.*          no mask          -> mask 2
    eval/info.csv                         ImageID,ans (the submission: ans filled in)
    eval/images/<ImageID>

class = mask * 6 + gender * 3 + age_bin (gender male 0 / female 1; age <30 / 30-59 / >=60
with the bounds in data.params.age_bounds). Unexpected files and missing images are
warned about and skipped; known bad labels (data.params.bad_labels) are fixed first.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import DataConfig
from kit.data.csv import read_csv
from kit.data.images import ImageData, ImageSet
from kit.errors import ConfigError, DataError

STEMS = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1,
         "normal": 2}
EXTENSIONS = {".jpg", ".jpeg", ".png"}
GENDERS = {"male": 0, "female": 1}
FIXES = ("swap", "flip_gender", "gender", "age", "drop")


def encode(mask, gender, age_bin):
    """The 18-class label: mask * 6 + gender * 3 + age_bin (works on arrays)."""
    return np.asarray(mask) * 6 + np.asarray(gender) * 3 + np.asarray(age_bin)


def decode(label):
    """(mask, gender, age_bin) of 18-class labels."""
    label = np.asarray(label)
    return label // 6, (label // 3) % 2, label % 3


def age_bin(age, bounds=(30, 60)):
    """0 below bounds[0], 1 below bounds[1], else 2 (bounds in years, from config)."""
    return np.searchsorted(np.asarray(bounds), np.asarray(age), side="right")


def scan_people(people: pd.DataFrame, images_dir: Path) -> pd.DataFrame:
    """One row per image found: person folder, stem, path; warns about the rest."""
    rows, unexpected, missing, no_folder = [], [], [], []
    for person in people["path"]:
        folder = images_dir / person
        if not folder.is_dir():
            no_folder.append(person)
            continue
        found = {}
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            stem, ext = os.path.splitext(entry.name)
            if stem in STEMS and ext.lower() in EXTENSIONS and stem not in found:
                found[stem] = entry.path
            else:
                unexpected.append(f"{person}/{entry.name}")
        missing += [f"{person}/{s}" for s in STEMS if s not in found]
        rows += [(person, stem, path) for stem, path in found.items()]
    for what, items in (("unexpected files skipped", unexpected), ("images missing", missing),
                        ("person folders missing", no_folder)):
        if items:
            warnings.warn(f"{images_dir}: {len(items)} {what} (e.g. {', '.join(items[:3])})",
                          stacklevel=2)
    return pd.DataFrame(rows, columns=["person", "stem", "file"])


def apply_bad_labels(people: pd.DataFrame, images: pd.DataFrame, bad_labels: dict):
    """Fix known label errors by person id: {"000020": {swap = ["incorrect_mask", "normal"]},
    "006359": {flip_gender = true}, "x": {gender = "female"}, "y": {age = 61}, "z": {drop = true}}."""
    people, images = people.copy(), images.copy()
    absent = []
    for pid, fix in bad_labels.items():
        if not isinstance(fix, dict):
            raise ConfigError(f"data.params.bad_labels[{pid!r}] = {fix!r}: give a table, e.g. "
                              "{ swap = [\"incorrect_mask\", \"normal\"] }")
        unknown = sorted(set(fix) - set(FIXES))
        if unknown:
            raise ConfigError(f"data.params.bad_labels[{pid!r}]: unknown keys {unknown}; "
                              f"valid: {', '.join(FIXES)}")
        if "swap" in fix and not (len(fix["swap"]) == 2 and set(fix["swap"]) <= set(STEMS)):
            raise ConfigError(f"data.params.bad_labels[{pid!r}].swap = {fix['swap']!r}: give "
                              f"two image names among {', '.join(STEMS)}")
        hit = people["id"] == str(pid)
        if not hit.any():
            absent.append(str(pid))
            continue
        folders = set(people.loc[hit, "path"])
        if fix.get("drop"):
            people, images = people[~hit], images[~images["person"].isin(folders)]
            continue
        if "flip_gender" in fix and fix["flip_gender"]:
            people.loc[hit, "gender"] = people.loc[hit, "gender"].map({"male": "female", "female": "male"})
        if "gender" in fix:
            people.loc[hit, "gender"] = fix["gender"]
        if "age" in fix:
            people.loc[hit, "age"] = int(fix["age"])
        if "swap" in fix:
            a, b = fix["swap"]
            mine = images["person"].isin(folders)
            images.loc[mine & (images["stem"] == a), "mask"] = STEMS[b]
            images.loc[mine & (images["stem"] == b), "mask"] = STEMS[a]
    if absent:  # one line, not one warning per id (a demo set has none of them)
        warnings.warn(f"data.params.bad_labels: {len(absent)} of {len(bad_labels)} person ids "
                      f"are not in train.csv (e.g. {', '.join(absent[:3])}); not applied",
                      stacklevel=2)
    return people, images


def read_train(csv_path: Path, images_dir: Path, *, age_bounds=(30, 60), bad_labels=None) -> pd.DataFrame:
    """One row per train image: id, person, file, mask, gender, age_bin, label."""
    people = read_csv(csv_path, required=["id", "gender", "age", "path"], what="train")
    people["id"] = people["id"].astype(str).str.zfill(6)
    images = scan_people(people, images_dir)
    images["mask"] = images["stem"].map(STEMS)
    people, images = apply_bad_labels(people, images, bad_labels or {})
    bad = ~people["gender"].isin(list(GENDERS))
    if bad.any():
        row = people[bad].iloc[0]
        raise DataError(f"{csv_path}: person {row['id']} has gender {row['gender']!r}; "
                        f"valid: {', '.join(GENDERS)}")
    if not pd.api.types.is_numeric_dtype(people["age"]):
        raise DataError(f"{csv_path}: column 'age' must hold whole years")
    info = people.set_index("path")[["gender", "age"]]
    images = images.join(info, on="person")
    images["gender"] = images["gender"].map(GENDERS)
    images["age_bin"] = age_bin(images["age"], age_bounds)
    images["label"] = encode(images["mask"], images["gender"], images["age_bin"])
    images["id"] = images["person"] + "/" + images["stem"]
    return images.reset_index(drop=True)


def load(data: DataConfig, data_dir: Path, cache_dir: Path, *, age_bounds=(30, 60),
         bad_labels=None, images_dir="train/images", eval_images_dir="eval/images") -> ImageData:
    if len(age_bounds) != 2 or not age_bounds[0] < age_bounds[1]:
        raise ConfigError(f"data.params.age_bounds = {age_bounds}: give two increasing ages, "
                          "e.g. [30, 60]")
    train = read_train(data_dir / data.train, data_dir / images_dir, age_bounds=age_bounds,
                       bad_labels=bad_labels)
    if train.empty:
        raise DataError(f"no train images found under {data_dir / images_dir}")
    info = read_csv(data_dir / data.test, required=[data.id], what="eval")
    test_files = np.array([str(data_dir / eval_images_dir / name) for name in info[data.id]])
    return ImageData(
        train=ImageSet(ids=train["id"].to_numpy(), labels=train["label"].to_numpy(np.int64),
                       groups=train["person"].to_numpy(), paths=train["file"].to_numpy()),
        test=ImageSet(ids=info[data.id].to_numpy(), paths=test_files),
        classes=list(range(18)))
