"""Synthetic Ames houses in Kaggle's House Prices layout (train.csv, test.csv,
sample_submission.csv).

The 81 columns (80 in test), their order and types, the category levels and their
frequencies follow the real files, and so does the missing-value pattern: NA for no alley,
basement, garage, pool or fence, LotFrontage missing in ~18% of houses, and, as in Kaggle's
test.csv only, a few values missing in columns that train never misses (MSZoning, KitchenQual,
GarageCars, BsmtFullBath, ...). SalePrice is log-linear in OverallQual, GrLivArea, TotalBsmtSF,
YearBuilt and Neighborhood plus noise, and train holds two huge houses sold cheap, like the real
one. It is demo data: the scores mean nothing on Kaggle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import atomic_path, write_csv, write_text

COLUMNS = [
    "Id", "MSSubClass", "MSZoning", "LotFrontage", "LotArea", "Street", "Alley", "LotShape",
    "LandContour", "Utilities", "LotConfig", "LandSlope", "Neighborhood", "Condition1",
    "Condition2", "BldgType", "HouseStyle", "OverallQual", "OverallCond", "YearBuilt",
    "YearRemodAdd", "RoofStyle", "RoofMatl", "Exterior1st", "Exterior2nd", "MasVnrType",
    "MasVnrArea", "ExterQual", "ExterCond", "Foundation", "BsmtQual", "BsmtCond", "BsmtExposure",
    "BsmtFinType1", "BsmtFinSF1", "BsmtFinType2", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF",
    "Heating", "HeatingQC", "CentralAir", "Electrical", "1stFlrSF", "2ndFlrSF", "LowQualFinSF",
    "GrLivArea", "BsmtFullBath", "BsmtHalfBath", "FullBath", "HalfBath", "BedroomAbvGr",
    "KitchenAbvGr", "KitchenQual", "TotRmsAbvGrd", "Functional", "Fireplaces", "FireplaceQu",
    "GarageType", "GarageYrBlt", "GarageFinish", "GarageCars", "GarageArea", "GarageQual",
    "GarageCond", "PavedDrive", "WoodDeckSF", "OpenPorchSF", "EnclosedPorch", "3SsnPorch",
    "ScreenPorch", "PoolArea", "PoolQC", "Fence", "MiscFeature", "MiscVal", "MoSold", "YrSold",
    "SaleType", "SaleCondition", "SalePrice",
]
# "level:count" in the real train.csv (1,095 rows); "_" stands for a space, NA for missing.
# Basement, garage, fireplace, pool and veneer levels are drawn for the houses that have one.
LEVELS = {
    "MSSubClass": "20:402 60:218 50:115 120:65 70:49 30:47 160:45 80:43 90:38 190:24 85:17 "
                  "75:12 45:9 180:9 40:2",
    "MSZoning": "RL:867 RM:167 FV:41 RH:12 C_(all):8",
    "Street": "Pave:1091 Grvl:4",
    "Alley": "Grvl:37 Pave:26 NA:1032",
    "LotShape": "Reg:688 IR1:372 IR2:28 IR3:7",
    "LandContour": "Lvl:985 Bnk:52 HLS:30 Low:28",
    "Utilities": "AllPub:1094 NoSeWa:1",
    "LotConfig": "Inside:789 Corner:196 CulDSac:73 FR2:34 FR3:3",
    "LandSlope": "Gtl:1038 Mod:46 Sev:11",
    "Neighborhood": "NAmes:164 CollgCr:115 OldTown:86 Edwards:76 NridgHt:60 Gilbert:57 "
                    "Somerst:56 NWAmes:54 Sawyer:53 SawyerW:47 BrkSide:45 Crawfor:39 Mitchel:35 "
                    "NoRidge:30 Timber:30 IDOTRR:28 ClearCr:23 SWISU:21 StoneBr:19 MeadowV:17 "
                    "BrDale:12 Blmngtn:11 Veenker:9 NPkVill:7 Blueste:1",
    "Condition1": "Norm:943 Feedr:66 Artery:35 RRAn:18 PosN:15 RRAe:8 RRNn:5 PosA:4 RRNe:1",
    "Condition2": "Norm:1081 Feedr:5 Artery:2 RRNn:2 PosN:2 PosA:1 RRAn:1 RRAe:1",
    "BldgType": "1Fam:916 TwnhsE:85 Duplex:38 Twnhs:31 2fmCon:25",
    "HouseStyle": "1Story:538 2Story:333 1.5Fin:122 SLvl:47 SFoyer:31 1.5Unf:10 2.5Unf:10 "
                  "2.5Fin:4",
    "OverallQual": "1:2 2:2 3:14 4:84 5:307 6:284 7:232 8:122 9:34 10:14",
    "OverallCond": "1:1 2:4 3:14 4:41 5:604 6:198 7:156 8:59 9:18",
    "RoofStyle": "Gable:846 Hip:223 Flat:10 Gambrel:9 Mansard:5 Shed:2",
    "RoofMatl": "CompShg:1076 Tar&Grv:8 WdShake:4 WdShngl:3 Metal:1 Membran:1 Roll:1 ClyTile:1",
    "Exterior1st": "VinylSd:384 MetalSd:165 Wd_Sdng:161 HdBoard:161 Plywood:82 CemntBd:49 "
                   "BrkFace:34 WdShing:20 Stucco:19 AsbShng:15 BrkComm:2 AsphShn:1 Stone:1 "
                   "CBlock:1",
    "Exterior2nd": "VinylSd:374 MetalSd:162 HdBoard:149 Wd_Sdng:149 Plywood:112 CmentBd:49 "
                   "Wd_Shng:27 Stucco:19 BrkFace:18 AsbShng:15 ImStucc:8 Brk_Cmn:6 AsphShn:3 "
                   "Stone:2 Other:1 CBlock:1",
    "MasVnrType": "BrkFace:330 Stone:100 BrkCmn:11",
    "ExterQual": "TA:686 Gd:357 Ex:40 Fa:12",
    "ExterCond": "TA:959 Gd:110 Fa:23 Ex:2 Po:1",
    "Foundation": "CBlock:491 PConc:468 BrkTil:110 Slab:20 Stone:4 Wood:2",
    "BsmtQual": "TA:490 Gd:450 Ex:96 Fa:29",
    "BsmtCond": "TA:974 Gd:56 Fa:33 Po:2",
    "BsmtExposure": "No:699 Av:168 Gd:109 Mn:88",
    "BsmtFinType1": "Unf:316 GLQ:303 ALQ:171 Rec:109 BLQ:106 LwQ:60",
    "BsmtFinType2": "Unf:938 Rec:40 LwQ:34 BLQ:26 ALQ:16 GLQ:10",
    "Heating": "GasA:1075 GasW:13 Wall:3 Grav:2 Floor:1 OthW:1",
    "HeatingQC": "Ex:554 TA:322 Gd:180 Fa:38 Po:1",
    "CentralAir": "Y:1025 N:70",
    "Electrical": "SBrkr:1011 FuseA:62 FuseF:19 FuseP:2 Mix:1",
    "BsmtFullBath": "0:648 1:436 2:10 3:1",
    "BsmtHalfBath": "0:1037 1:57 2:1",
    "FullBath": "2:576 1:489 3:25 0:5",
    "HalfBath": "0:690 1:397 2:8",
    "BedroomAbvGr": "3:601 2:262 4:172 1:40 5:12 6:5 0:3",
    "KitchenAbvGr": "1:1045 2:48 3:1 0:1",
    "KitchenQual": "TA:552 Gd:439 Ex:74 Fa:30",
    "Functional": "Typ:1019 Min2:25 Min1:24 Maj1:11 Mod:11 Maj2:4 Sev:1",
    "Fireplaces": "0:513 1:491 2:88 3:3",
    "FireplaceQu": "Gd:286 TA:231 Fa:26 Ex:22 Po:17",
    "GarageType": "Attchd:636 Detchd:306 BuiltIn:71 Basment:14 CarPort:8 2Types:4",
    "GarageFinish": "Unf:471 RFn:307 Fin:261",
    "GarageCars": "2:621 1:283 3:131 4:4",
    "GarageQual": "TA:985 Fa:37 Gd:12 Ex:3 Po:2",
    "GarageCond": "TA:998 Fa:27 Gd:7 Po:5 Ex:2",
    "PavedDrive": "Y:1010 N:66 P:19",
    "PoolQC": "Gd:3 Ex:2 Fa:1",
    "Fence": "MnPrv:115 GdWo:43 GdPrv:43 MnWw:9 NA:885",
    "MiscFeature": "Shed:38 Gar2:2 Othr:2 NA:1053",
    "MoSold": "1:43 2:36 3:75 4:115 5:156 6:177 7:176 8:97 9:54 10:71 11:50 12:45",
    "YrSold": "2006:238 2007:245 2008:234 2009:251 2010:127",
    "SaleType": "WD:952 New:89 COD:33 ConLD:9 ConLI:4 CWD:4 ConLw:3 Con:1",
    "SaleCondition": "Normal:900 Partial:92 Abnorml:76 Family:14 Alloca:10 AdjLand:3",
}
INTEGERS = ["MSSubClass", "OverallQual", "OverallCond", "BsmtFullBath", "BsmtHalfBath",
            "FullBath", "HalfBath", "BedroomAbvGr", "KitchenAbvGr", "Fireplaces", "GarageCars",
            "MoSold", "YrSold"]
# Share of houses with one and median size in sq ft among those (real train.csv).
EXTRAS = {"WoodDeckSF": (0.48, 170), "OpenPorchSF": (0.55, 60), "EnclosedPorch": (0.14, 150),
          "3SsnPorch": (0.012, 170), "ScreenPorch": (0.074, 180), "LowQualFinSF": (0.016, 380)}
BASEMENT = ["BsmtQual", "BsmtCond", "BsmtExposure", "BsmtFinType1", "BsmtFinType2"]
GARAGE = ["GarageType", "GarageYrBlt", "GarageFinish", "GarageQual", "GarageCond"]
# Log-price premium over NAmes at equal quality, size and age, from a linear fit of
# log(SalePrice) on the real train; neighbourhoods not listed are ~0.
NEIGHBORHOOD_EFFECT = {"BrDale": -0.25, "IDOTRR": -0.22, "MeadowV": -0.17, "Blueste": -0.15,
                       "OldTown": -0.08, "Edwards": -0.07, "NPkVill": -0.07, "SWISU": -0.05,
                       "Blmngtn": -0.05, "CollgCr": 0.03, "Timber": 0.06, "Somerst": 0.06,
                       "NoRidge": 0.11, "NridgHt": 0.13, "ClearCr": 0.13, "StoneBr": 0.15,
                       "Veenker": 0.16, "Crawfor": 0.17}


def _draw(column: str, n: int, rng: np.random.Generator) -> np.ndarray:
    pairs = [item.rsplit(":", 1) for item in LEVELS[column].split()]
    levels = [None if level == "NA" else level.replace("_", " ") for level, _ in pairs]
    counts = np.array([int(count) for _, count in pairs], dtype=np.float64)
    values = rng.choice(np.array(levels, dtype=object), n, p=counts / counts.sum())
    return values.astype(np.int64) if column in INTEGERS else values


def _sizes(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """Floors, basement and garage in sq ft; GrLivArea is the floors' sum as in the real data."""
    n = len(frame)
    for column, (share, median) in EXTRAS.items():
        size = rng.lognormal(np.log(median), 0.5, n).round()
        frame[column] = np.where(rng.random(n) < share, size, 0).astype(np.int64)
    log_first = np.log(1090) + 0.07 * (frame["OverallQual"] - 6)  # bigger houses are better
    frame["1stFlrSF"] = rng.lognormal(log_first, 0.3).clip(334).round().astype(np.int64)
    second = rng.normal(780, 230, n).clip(200).round()
    frame["2ndFlrSF"] = np.where(rng.random(n) < 0.44, second, 0).astype(np.int64)
    frame["GrLivArea"] = frame["1stFlrSF"] + frame["2ndFlrSF"] + frame["LowQualFinSF"]
    has_basement = rng.random(n) > 0.027
    total = (frame["1stFlrSF"] * rng.uniform(0.7, 1.1, n)).round().astype(np.int64) * has_basement
    fin1 = np.where(frame["BsmtFinType1"] == "Unf", 0, (total * rng.uniform(0.2, 0.9, n)).round())
    fin2 = np.where(frame["BsmtFinType2"] == "Unf", 0,
                    ((total - fin1) * rng.uniform(0.1, 0.6, n)).round())
    frame["BsmtFinSF1"], frame["BsmtFinSF2"] = fin1.astype(np.int64), fin2.astype(np.int64)
    frame["BsmtUnfSF"], frame["TotalBsmtSF"] = total - fin1 - fin2, total
    frame.loc[~has_basement, BASEMENT] = None
    frame.loc[~has_basement, ["BsmtFullBath", "BsmtHalfBath"]] = 0
    has_garage = rng.random(n) > 0.051
    frame["GarageCars"] *= has_garage
    frame["GarageArea"] = (frame["GarageCars"] * rng.normal(250, 40, n)).round().astype(np.int64)
    frame.loc[~has_garage, GARAGE] = np.nan


def _houses(n: int, start_id: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame({column: _draw(column, n, rng) for column in LEVELS})
    frame["Id"] = np.arange(start_id, start_id + n)
    frame["LotFrontage"] = rng.normal(70, 22, n).clip(21, 313).round()
    frame.loc[rng.random(n) < 0.18, "LotFrontage"] = np.nan
    frame["LotArea"] = rng.lognormal(np.log(9450), 0.45, n).clip(1300).round().astype(np.int64)
    # Better houses are newer (real correlation 0.55); none is built after its sale.
    built = rng.normal(1972 + 8 * (frame["OverallQual"] - 6), 22).round().clip(1872)
    frame["YearBuilt"] = np.minimum(built, frame["YrSold"]).astype(np.int64)
    later = rng.integers(frame["YearBuilt"], frame["YrSold"] + 1)
    remodelled = np.where(rng.random(n) < 0.5, frame["YearBuilt"], later)
    frame["YearRemodAdd"] = remodelled.clip(1950)  # the data records earlier years as 1950
    frame["GarageYrBlt"] = np.where(rng.random(n) < 0.74, frame["YearBuilt"], later).astype(float)
    veneer = rng.lognormal(np.log(200), 0.7, n).round()
    frame["MasVnrArea"] = np.where(rng.random(n) < 0.4, veneer, 0.0)
    frame.loc[frame["MasVnrArea"] == 0, "MasVnrType"] = "None"  # the real files' word
    frame.loc[rng.random(n) < 0.005, ["MasVnrType", "MasVnrArea"]] = np.nan
    _sizes(frame, rng)
    frame["TotRmsAbvGrd"] = (frame["GrLivArea"] / 250 + 1).round().clip(2, 14).astype(np.int64)
    frame.loc[frame["Fireplaces"] == 0, "FireplaceQu"] = None
    frame["PoolArea"] = np.where(rng.random(n) < 0.005, rng.integers(480, 740, n), 0)
    frame.loc[frame["PoolArea"] == 0, "PoolQC"] = None
    misc = rng.lognormal(np.log(500), 0.8, n).round().astype(np.int64)
    frame["MiscVal"] = np.where(frame["MiscFeature"].notna(), misc, 0)
    return frame[COLUMNS[:-1]]


def _sale_price(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Whole dollars; coefficients from a log-linear fit on the real train (residual sd 0.15)."""
    log_price = (3.95 + 0.09 * frame["OverallQual"] + 0.44 * np.log(frame["GrLivArea"])
                 + 0.17 * frame["TotalBsmtSF"] / 1000 + 0.0021 * frame["YearBuilt"]
                 + frame["Neighborhood"].map(NEIGHBORHOOD_EFFECT).fillna(0.0)
                 + rng.normal(0, 0.15, len(frame)))
    return np.exp(log_price).round().astype(np.int64)


def _add_outliers(train: pd.DataFrame, rng: np.random.Generator) -> None:
    """Two new, huge, top-quality houses sold cheap as partial sales (real Ids 524 and 1299)."""
    rows = rng.choice(len(train), 2, replace=False)
    first, second = rng.integers(3100, 4700, 2), rng.integers(1000, 1600, 2)
    train.loc[rows, ["1stFlrSF", "2ndFlrSF", "LowQualFinSF"]] = np.c_[first, second, [0, 0]]
    train.loc[rows, "GrLivArea"] = first + second
    train.loc[rows, ["OverallQual", "YearBuilt", "YrSold"]] = [10, 2007, 2008]
    train.loc[rows, ["SaleType", "SaleCondition"]] = ["New", "Partial"]
    train.loc[rows, "SalePrice"] = rng.integers(150_000, 190_000, 2)


def _kaggle_test_gaps(test: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Values missing in Kaggle's test.csv in columns that train never misses."""
    rows = rng.choice(len(test), 12, replace=False)
    numbers = ["BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "BsmtFullBath",
               "BsmtHalfBath", "GarageCars", "GarageArea"]
    test = test.astype(dict.fromkeys(numbers, np.float64))  # NaN needs a float column
    test.loc[rows[:4], "MSZoning"] = None
    test.loc[rows[4:6], ["Utilities", "Functional"]] = None
    test.loc[rows[6], ["Exterior1st", "Exterior2nd"]] = None
    test.loc[rows[7], ["KitchenQual", "SaleType"]] = None
    test.loc[rows[8:10], [*BASEMENT, *numbers[:6]]] = np.nan  # no basement, numbers missing
    test.loc[rows[10:], "GarageType"] = "Detchd"  # a garage with everything else unknown
    test.loc[rows[10:], [*GARAGE[1:], "GarageCars", "GarageArea"]] = np.nan
    return test


def make_demo(data_dir: Path, seed: int = 0) -> None:
    """Write the demo files into `data_dir`, each through a temporary name (kit.io): an
    interrupted demo never leaves a half file that a later run (or --data DIR) trusts."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    train = _houses(1095, 1, rng)
    train["SalePrice"] = _sale_price(train, rng)
    _add_outliers(train, rng)
    test = _kaggle_test_gaps(_houses(365, 1096, rng), rng)
    # Kaggle's files write NA for missing and whole numbers without ".0".
    for name, frame in (("train.csv", train), ("test.csv", test)):
        with atomic_path(data_dir / name) as tmp:
            frame.to_csv(tmp, index=False, na_rep="NA", float_format="%.0f")
    # The real sample submission predicts one constant, the mean train price.
    sample = pd.DataFrame({"Id": test["Id"], "SalePrice": round(train["SalePrice"].mean(), 6)})
    write_csv(data_dir / "sample_submission.csv", sample)
    slug = "house-prices-advanced-regression-techniques"
    write_text(
        data_dir / "DEMO_README.txt",
        "SYNTHETIC DEMO DATA written by `--demo`, not the real House Prices files.\n"
        f"Download the real data with: kaggle competitions download -c {slug} -p data/{slug}\n")
