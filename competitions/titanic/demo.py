"""Synthetic Titanic passengers in Kaggle's layout (train.csv, test.csv, gender_submission.csv).

The columns, types and missing-value pattern match the real files; survival follows the
real data's main effects (sex, class, age, family size) plus noise, so a model learns
something real-looking. It is demo data: the scores mean nothing on Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import write_csv, write_text

SURNAMES = ["Smith", "Brown", "Kelly", "Andersson", "Sage", "Goodwin", "Carter", "Palsson",
            "Rice", "Skoog", "Johnson", "Fortune", "Panula", "Asplund", "Baclini", "Ford",
            "Harris", "Williams", "Allison", "Hart", "West", "Davies", "Moran", "Lefebre"]
FIRST = {"male": ["John", "William", "Charles", "George", "James", "Karl", "Ernst"],
         "female": ["Mary", "Anna", "Elizabeth", "Margaret", "Alice", "Helga", "Ellen"]}


def _passengers(n: int, start_id: int, rng: np.random.Generator) -> pd.DataFrame:
    pclass = rng.choice([1, 2, 3], n, p=[0.24, 0.21, 0.55])
    sex = rng.choice(["male", "female"], n, p=[0.65, 0.35])
    age = np.clip(rng.normal(30 - 4 * (pclass - 2), 14, n), 0.4, 80).round(0)
    child = age < 14
    sibsp = rng.choice([0, 1, 2, 3, 4], n, p=[0.68, 0.23, 0.04, 0.03, 0.02])
    parch = np.where(child, rng.choice([1, 2], n), rng.choice([0, 1, 2], n, p=[0.76, 0.14, 0.1]))
    title = np.where(sex == "male", np.where(child, "Master", "Mr"),
                     np.where((age < 25) & (sibsp == 0), "Miss", "Mrs"))
    names = [f"{rng.choice(SURNAMES)}, {t}. {rng.choice(FIRST[s])}" for t, s in zip(title, sex)]
    fare = np.round(rng.lognormal(np.log([1, 60, 15, 9])[pclass], 0.6), 4)
    cabin = np.where((pclass == 1) & (rng.random(n) < 0.8),
                     [f"{rng.choice(list('ABCDE'))}{rng.integers(1, 130)}" for _ in range(n)], None)
    frame = pd.DataFrame({
        "PassengerId": np.arange(start_id, start_id + n), "Pclass": pclass, "Name": names,
        "Sex": sex, "Age": age, "SibSp": sibsp, "Parch": parch,
        "Ticket": [str(rng.integers(1000, 1400)) for _ in range(n)], "Fare": fare,
        "Cabin": cabin, "Embarked": rng.choice(["S", "C", "Q"], n, p=[0.72, 0.19, 0.09]),
    })
    frame.loc[rng.random(n) < 0.2, "Age"] = np.nan  # the real files miss ~20% of ages
    return frame


def _survived(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    family = frame["SibSp"] + frame["Parch"] + 1
    logit = (-1.1 + 2.6 * (frame["Sex"] == "female") - 0.9 * (frame["Pclass"] - 2)
             + 1.2 * (frame["Age"].fillna(30) < 14) - 0.5 * (family > 4) - 0.01 * frame["Age"].fillna(30))
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def make_demo(data_dir: Path, seed: int = 0) -> None:
    """Write the demo files into `data_dir`, each through a temporary name (kit.io): an
    interrupted demo never leaves a half file that a later run (or --data DIR) trusts."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    train = _passengers(891, 1, rng)
    train.insert(1, "Survived", _survived(train, rng))
    test = _passengers(418, 892, rng)
    write_csv(data_dir / "train.csv", train)
    write_csv(data_dir / "test.csv", test)
    gender = pd.DataFrame({"PassengerId": test["PassengerId"],
                           "Survived": (test["Sex"] == "female").astype(np.int64)})
    write_csv(data_dir / "gender_submission.csv", gender)
    write_text(
        data_dir / "DEMO_README.txt",
        "SYNTHETIC DEMO DATA written by `--demo`, not the real Titanic files.\n"
        "Download the real data with: kaggle competitions download -c titanic -p data/titanic\n")
