"""Titanic features. Called by the tabular task as build(train, test) -> (train, test).

Group counts (ticket, family), the travel groups and the age-by-title medians are computed
over train and test together: they use no labels, only which passengers travelled
together, so they leak nothing from the validation folds.

fold_features(fit, frame) adds what uses labels: the fate of each passenger's group among
the rows whose labels a fold may use (the "women-child-group" idea: women and boys of a
travel group tend to share one fate). The kit calls it per fold, and by an inner K-fold
for the fold's own training rows, so no row ever sees its own label.
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
    both["Surname"] = both["Name"].str.split(",").str[0].str.strip()
    both["GroupId"] = _travel_groups(both)
    both["GroupSize"] = both.groupby("GroupId")["GroupId"].transform("size")
    both["GroupWCSize"] = _is_woman_or_child(both).groupby(both["GroupId"]).transform("sum")
    both["Pclass"] = both["Pclass"].astype(str)
    out_train = both[both["_part"] == "train"].drop(columns="_part").reset_index(drop=True)
    out_test = both[both["_part"] == "test"].drop(columns="_part").reset_index(drop=True)
    return out_train, out_test.drop(columns=[c for c in train.columns
                                             if c not in test.columns], errors="ignore")


def _is_woman_or_child(frame: pd.DataFrame) -> pd.Series:
    """Women and boys: the ones lifeboats took first, whose fates a group shares. Boys are
    Title Master (age is missing for a fifth of the passengers, the title never)."""
    return (frame["Sex"] == "female") | (frame["Title"] == "Master")


def _travel_groups(both: pd.DataFrame) -> pd.Series:
    """Connected components of "same family" or "same ticket", as the smallest row position.

    A family is surname + class + ticket less its last digit (families bought consecutive
    tickets) + fare + port, which keeps apart unrelated passengers of a common surname
    (after C. Deotte's Titanic WCG kernel); a shared ticket adds nannies, friends and in-laws.
    """
    ticket = both["Ticket"].astype(str)  # all-digit tickets read as numbers (demo data)
    family = (both["Surname"] + "|" + both["Pclass"].astype(str) + "|"
              + ticket.str[:-1] + "|" + both["Fare"].map("{:.4f}".format) + "|"
              + both["Embarked"].fillna(""))
    group = pd.Series(np.arange(len(both)), index=both.index)  # Fare: "nan" is a key too
    while True:  # min-label propagation until stable (Titanic: after one round)
        new = group.groupby(family).transform("min").groupby(ticket).transform("min")
        if new.equals(group):
            return group
        group = new


def fold_features(fit: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Per row of `frame`: the survival of its group's women and boys among `fit` rows.

    GroupWCKnown: how many of them `fit` holds (0: nothing is known). GroupWCSurvival:
    their survival rate, 0.5 when none is known, so that "unknown" sits between "all
    died" and "all survived" for every model (the kit imputes NaN by the median, which
    would read an unknown group as one that survived).
    """
    stats = (fit[_is_woman_or_child(fit)].groupby("GroupId")["Survived"]
             .agg(["sum", "count"]))
    known = frame["GroupId"].map(stats["count"]).fillna(0).astype(np.int64)
    survived = frame["GroupId"].map(stats["sum"]).fillna(0)
    rate = (survived / known.where(known > 0)).fillna(0.5)
    return pd.DataFrame({"GroupWCKnown": known, "GroupWCSurvival": rate}, index=frame.index)
