"""House Prices features. Called by the tabular task as build(train, test) -> (train, test)
before the folds, and keep_train_rows(train) -> mask on each fold's training rows.

No feature sees the label: the columns only train has (SalePrice) are set aside before train
and test are joined and put back unchanged at the end. The LotFrontage medians use train and
test together; they use no labels, so they leak nothing from the validation folds.

In this data "NA" mostly means "the house has none" (no alley, basement, garage, pool, fence;
data_description.txt): those become "None" or 0. Kaggle's full test.csv also misses values in
columns complete in train (MSZoning, KitchenQual, GarageCars on a house with a garage, ...):
those stay NaN, and the kit's preprocessors impute them (fold median / a "missing" level).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

QUALITY = {"Ex": 5, "Gd": 4, "TA": 3, "Fa": 2, "Po": 1}
FINISH = {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1}
# Ordinal ratings whose NA means "no basement / fireplace / garage / pool": scored 0, below Po.
ORDINAL_NONE = {"BsmtQual": QUALITY, "BsmtCond": QUALITY, "FireplaceQu": QUALITY,
                "GarageQual": QUALITY, "GarageCond": QUALITY, "PoolQC": QUALITY,
                "BsmtExposure": {"Gd": 4, "Av": 3, "Mn": 2, "No": 1},
                "BsmtFinType1": FINISH, "BsmtFinType2": FINISH,
                "GarageFinish": {"Fin": 3, "RFn": 2, "Unf": 1}}
# Every house has these, so a missing rating (Kaggle test only) is unknown: left NaN.
ORDINAL_KNOWN = {"ExterQual": QUALITY, "ExterCond": QUALITY, "HeatingQC": QUALITY,
                 "KitchenQual": QUALITY}
NONE_CATEGORIES = ["Alley", "MasVnrType", "GarageType", "Fence", "MiscFeature"]
BASEMENT_NUMBERS = ["BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "BsmtFullBath",
                    "BsmtHalfBath"]
PORCHES = ["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch"]
# Codes, not quantities: MSSubClass 20..190 is a dwelling type; the month and year of sale
# act as market conditions (2008 crash) rather than a trend.
AS_CATEGORY = ["MSSubClass", "MoSold", "YrSold"]
# Almost constant: Utilities is AllPub in all but 1 of 1,460 train rows, Street Pave in all but 6.
DROP = ["Utilities", "Street"]


def build(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test with the features below; train's SalePrice comes back untouched."""
    labels = [c for c in train.columns if c not in test.columns]
    both = pd.concat([train.drop(columns=labels), test], ignore_index=True)
    _fill_absent(both)
    for column, levels in {**ORDINAL_NONE, **ORDINAL_KNOWN}.items():
        both[column] = both[column].map(levels).astype(np.float64)
    both[list(ORDINAL_NONE)] = both[list(ORDINAL_NONE)].fillna(0)
    by_neighborhood = both.groupby("Neighborhood")["LotFrontage"].transform("median")
    both["LotFrontage"] = both["LotFrontage"].fillna(by_neighborhood)  # feet of street
    _add_features(both)
    both[AS_CATEGORY] = both[AS_CATEGORY].astype(str)
    both = both.drop(columns=DROP)
    out_train = both.iloc[:len(train)].reset_index(drop=True)
    out_test = both.iloc[len(train):].reset_index(drop=True)
    return pd.concat([out_train, train[labels].reset_index(drop=True)], axis=1), out_test


def _fill_absent(both: pd.DataFrame) -> None:
    """NA that means "none": 0 square feet / cars / baths, the category "None"."""
    no_basement = both["BsmtQual"].isna()  # Kaggle test Id 2121: every basement number NaN
    both.loc[no_basement, BASEMENT_NUMBERS] = both.loc[no_basement, BASEMENT_NUMBERS].fillna(0)
    no_garage = both["GarageType"].isna()  # Id 2577 has a garage but no GarageCars: stays NaN
    both.loc[no_garage, ["GarageCars", "GarageArea"]] = (
        both.loc[no_garage, ["GarageCars", "GarageArea"]].fillna(0))
    # A garage-less house gets its build year rather than a median; 2207 (Kaggle test Id 2593)
    # is a typo for 2007, and no real garage is built after the sale.
    both["GarageYrBlt"] = both["GarageYrBlt"].fillna(both["YearBuilt"]).clip(upper=both["YrSold"])
    both["MasVnrArea"] = both["MasVnrArea"].fillna(0)  # NaN exactly where MasVnrType is NaN
    both[NONE_CATEGORIES] = both[NONE_CATEGORIES].fillna("None")


def _add_features(both: pd.DataFrame) -> None:
    """Sizes in square feet, ages in years at the sale."""
    both["TotalSF"] = both["TotalBsmtSF"] + both["1stFlrSF"] + both["2ndFlrSF"]
    # Clipped: Kaggle test has a house sold in 2007 and built in 2008 (Id 2550).
    both["HouseAge"] = (both["YrSold"] - both["YearBuilt"]).clip(lower=0)
    both["RemodAge"] = (both["YrSold"] - both["YearRemodAdd"]).clip(lower=0)
    both["QualGrLivArea"] = both["OverallQual"] * both["GrLivArea"]
    both["QualTotalSF"] = both["OverallQual"] * both["TotalSF"]
    both["TotalBath"] = (both["FullBath"] + 0.5 * both["HalfBath"] + both["BsmtFullBath"]
                         + 0.5 * both["BsmtHalfBath"])
    both["PorchSF"] = both[PORCHES].sum(axis=1)
    both["HasGarage"] = (both["GarageType"] != "None").astype(np.int64)
    both["HasBasement"] = (both["TotalBsmtSF"] > 0).astype(np.int64)
    both["Has2ndFloor"] = (both["2ndFlrSF"] > 0).astype(np.int64)
    both["HasPool"] = (both["PoolArea"] > 0).astype(np.int64)


def keep_train_rows(train: pd.DataFrame) -> np.ndarray:
    """False for houses over 4,000 sq ft sold under $300,000, True for every other row.

    The data's author recommends removing the houses over 4,000 sq ft (De Cock 2011, "Ames,
    Iowa: Alternative to the Boston Housing Data", J. Statistics Education 19(3)); in Kaggle's
    train two of them are partial sales far below their size's price (Ids 524 and 1299) and bend
    a linear fit. Called on each fold's training rows only: validation and test keep theirs.
    """
    outlier = (train["GrLivArea"] > 4000) & (train["SalePrice"] < 300_000)
    return ~outlier.to_numpy(dtype=bool)
