"""Titanic features. Called by the tabular task as build(train, test) -> (train, test).

Group counts (ticket, family) and the age-by-title medians are computed over train and
test together: they use no labels, only which passengers travelled together, so they
leak nothing from the validation folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TITLES = {"Mlle": "Miss", "Ms": "Miss", "Mme": "Mrs", "Lady": "Rare", "Countess": "Rare",
          "Capt": "Rare", "Col": "Rare", "Don": "Rare", "Dr": "Rare", "Major": "Rare",
          "Rev": "Rare", "Sir": "Rare", "Jonkheer": "Rare", "Dona": "Rare"}


def build(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    both = pd.concat([train.assign(_part="train"), test.assign(_part="test")], ignore_index=True)
    both["Title"] = both["Name"].str.extract(r",\s*([^\.]+)\.", expand=False).str.strip()
    both["Title"] = both["Title"].replace(TITLES)
    both.loc[~both["Title"].isin(["Mr", "Mrs", "Miss", "Master", "Rare"]), "Title"] = "Rare"
    both["FamilySize"] = both["SibSp"] + both["Parch"] + 1
    both["FamilyBucket"] = pd.cut(both["FamilySize"], [0, 1, 4, 20],
                                  labels=["alone", "small", "large"]).astype(str)
    both["TicketGroupSize"] = both.groupby("Ticket")["Ticket"].transform("size")
    both["FarePerPerson"] = both["Fare"] / both["TicketGroupSize"]
    both["Deck"] = both["Cabin"].str[0].fillna("U").replace({"T": "U"})
    age_by_title = both.groupby("Title")["Age"].transform("median")
    both["AgeMissing"] = both["Age"].isna().astype(np.int64)
    both["Age"] = both["Age"].fillna(age_by_title)
    both["IsChild"] = (both["Age"] < 14).astype(np.int64)
    both["Pclass"] = both["Pclass"].astype(str)
    out_train = both[both["_part"] == "train"].drop(columns="_part").reset_index(drop=True)
    out_test = both[both["_part"] == "test"].drop(columns="_part").reset_index(drop=True)
    return out_train, out_test.drop(columns=[c for c in train.columns
                                             if c not in test.columns], errors="ignore")
