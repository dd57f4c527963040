"""Synthetic pets in the layout of Kaggle's PetFinder.my Adoption Prediction (train/train.csv,
test/test.csv, test/sample_submission.csv). A pet's adoption speed (0 fastest .. 4 not
adopted in 100 days) follows a latent appeal: young, free, photographed, healthy pets and
descriptions with warm words go fast; each rescuer has a habit of its own, so a random
split that shares rescuers scores better than Kaggle's unseen rescuers would. It is demo
data: the scores mean nothing on Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv, write_text

WARM = ["playful", "cute", "friendly", "loving", "healthy", "gentle", "adorable", "active"]
COLD = ["shy", "sick", "old", "injured", "fierce", "blind"]
PLAIN = ["cat", "dog", "kitten", "puppy", "rescued", "found", "street", "home", "needs", "a",
         "very", "is", "and", "the", "looking", "for", "family", "vaccinated"]


def _description(rng: np.random.Generator, warmth: float) -> str:
    words = list(rng.choice(PLAIN, rng.integers(6, 20)))
    words += list(rng.choice(WARM, rng.poisson(max(warmth, 0.0) * 2)))
    words += list(rng.choice(COLD, rng.poisson(max(-warmth, 0.0) * 2)))
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def _pets(n: int, start: int, rescuers: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame({
        "Type": rng.integers(1, 3, n), "Name": rng.choice(["Milo", "Luna", "Bobby", ""], n),
        "Age": rng.gamma(1.5, 8, n).round().astype(int), "Breed1": rng.choice([265, 307, 266, 179], n),
        "Breed2": rng.choice([0, 0, 0, 307], n), "Gender": rng.integers(1, 4, n),
        "Color1": rng.integers(1, 8, n), "MaturitySize": rng.integers(1, 4, n),
        "FurLength": rng.integers(1, 4, n), "Vaccinated": rng.integers(1, 4, n),
        "Dewormed": rng.integers(1, 4, n), "Sterilized": rng.integers(1, 4, n),
        "Health": rng.choice([1, 1, 1, 2, 3], n), "Quantity": rng.choice([1, 1, 1, 2, 3, 5], n),
        "Fee": rng.choice([0, 0, 0, 50, 100, 300], n), "State": rng.choice([41326, 41401, 41327], n),
        "RescuerID": rng.choice(rescuers, n), "VideoAmt": rng.choice([0, 0, 0, 1], n),
        "PetID": [f"p{start + i:06d}" for i in range(n)], "PhotoAmt": rng.poisson(3, n).astype(float)})
    return frame


def _speed(frame: pd.DataFrame, habit: dict, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    warmth = rng.normal(0, 1, len(frame))
    appeal = (-0.04 * frame["Age"] - 0.004 * frame["Fee"] + 0.25 * np.minimum(frame["PhotoAmt"], 6)
              - 0.6 * (frame["Health"] > 1) + 0.5 * (frame["Type"] == 2) + 0.8 * warmth
              + frame["RescuerID"].map(habit).to_numpy() + rng.logistic(0, 0.8, len(frame)))
    speed = np.digitize(-appeal, np.quantile(-appeal, [0.03, 0.22, 0.5, 0.72]))
    return speed, [_description(rng, w) for w in warmth]


def make_demo(data_dir: Path, seed: int = 0, n_train: int = 3000, n_test: int = 1000) -> None:
    """Write the demo files into `data_dir` (each through a temporary name: kit.io)."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    rescuers = np.array([f"r{i:04d}" for i in range(400)])
    habit = dict(zip(rescuers, rng.normal(0, 0.7, len(rescuers))))
    train = _pets(n_train, 0, rescuers[:300], rng)  # the test set's rescuers are new ones
    test = _pets(n_test, n_train, rescuers[300:], rng)
    train["AdoptionSpeed"], train["Description"] = _speed(train, habit, rng)
    test["Description"] = _speed(test, habit, rng)[1]
    for part in ("train", "test"):
        (data_dir / part).mkdir(parents=True, exist_ok=True)
    write_csv(data_dir / "train" / "train.csv", train)
    write_csv(data_dir / "test" / "test.csv", test)
    write_csv(data_dir / "test" / "sample_submission.csv",
              pd.DataFrame({"PetID": test["PetID"], "AdoptionSpeed": 0}))
    write_text(data_dir / "DEMO_README.txt",
               "SYNTHETIC DEMO DATA written by `--demo`, not the real PetFinder.my files.\n"
               "Download the real data with: kaggle competitions download -c "
               "petfinder-adoption-prediction -p data/petfinder-adoption-prediction\n")
