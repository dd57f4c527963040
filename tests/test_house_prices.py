"""House Prices hooks: the demo files' layout, build()'s features and keep_train_rows().

Rows are demo houses (written to a tmp folder) with the values under test set by hand."""

import numpy as np
import pandas as pd
import pytest

from kit.hooks import load_hook
from kit.paths import ROOT

COMP = ROOT / "competitions" / "house-prices-advanced-regression-techniques"
build = load_hook(COMP, "features", "build")
keep_train_rows = load_hook(COMP, "features", "keep_train_rows")
make_demo = load_hook(COMP, "demo", "make_demo")

KAGGLE_COLUMNS = [  # train.csv's header on Kaggle; test.csv has all but SalePrice
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
NEW_COLUMNS = ["TotalSF", "HouseAge", "RemodAge", "QualGrLivArea", "QualTotalSF", "TotalBath",
               "PorchSF", "HasGarage", "HasBasement", "Has2ndFloor", "HasPool"]
# Missing in Kaggle's test.csv although train.csv never misses them.
TEST_ONLY_GAPS = ["MSZoning", "GarageCars", "BsmtFullBath", "KitchenQual"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("house_prices")
    make_demo(folder, seed=0)
    return folder


@pytest.fixture
def demo(demo_dir):
    return pd.read_csv(demo_dir / "train.csv"), pd.read_csv(demo_dir / "test.csv")


def houses(demo_train: pd.DataFrame, **columns) -> pd.DataFrame:
    """The first demo houses, one per value, with the given columns set by hand."""
    n = len(next(iter(columns.values())))
    return demo_train.head(n).assign(**columns)


def test_demo_files_have_kaggle_columns_in_order(demo_dir, demo):
    train, test = demo
    sample = pd.read_csv(demo_dir / "sample_submission.csv")
    assert list(train.columns) == KAGGLE_COLUMNS and len(train) == 1095
    assert list(test.columns) == KAGGLE_COLUMNS[:-1] and len(test) == 365
    assert list(sample.columns) == ["Id", "SalePrice"]
    assert sample["Id"].tolist() == test["Id"].tolist() and sample["SalePrice"].nunique() == 1
    assert not set(train["Id"]) & set(test["Id"])
    assert train["SalePrice"].dtype == np.int64 and train["SalePrice"].min() > 0
    assert (demo_dir / "DEMO_README.txt").read_text().startswith("SYNTHETIC DEMO DATA")


def test_demo_test_misses_values_that_train_never_misses(demo):
    train, test = demo
    for column in TEST_ONLY_GAPS:
        assert train[column].notna().all(), column
        assert test[column].isna().any(), column


def test_demo_has_the_two_outliers_and_is_seeded(tmp_path, demo_dir, demo):
    train, _ = demo
    assert (~keep_train_rows(train)).sum() == 2
    make_demo(tmp_path / "same", seed=0)
    make_demo(tmp_path / "other", seed=1)
    first = (demo_dir / "train.csv").read_bytes()
    assert (tmp_path / "same" / "train.csv").read_bytes() == first
    assert (tmp_path / "other" / "train.csv").read_bytes() != first


def test_build_keeps_sale_price_and_adds_features_to_both(demo):
    train, test = demo
    out_train, out_test = build(train.copy(), test.copy())
    pd.testing.assert_series_equal(out_train["SalePrice"], train["SalePrice"])
    assert "SalePrice" not in out_test.columns
    assert out_train["Id"].tolist() == train["Id"].tolist()
    assert out_test["Id"].tolist() == test["Id"].tolist()
    assert set(NEW_COLUMNS) <= set(out_train.columns) and set(NEW_COLUMNS) <= set(out_test.columns)
    assert not {"Utilities", "Street"} & set(out_train.columns)
    # The kit infers each feature's kind from its dtype: train and test must agree.
    for column in out_test.columns:
        numeric = pd.api.types.is_numeric_dtype(out_train[column])
        assert numeric == pd.api.types.is_numeric_dtype(out_test[column]), column
    for column in ["MSSubClass", "MoSold", "YrSold", "Neighborhood"]:
        assert not pd.api.types.is_numeric_dtype(out_train[column]), column


def test_build_features_do_not_depend_on_sale_price(demo):
    train, test = demo
    shuffled = train.assign(SalePrice=np.random.default_rng(0).permutation(train["SalePrice"]))
    out, _ = build(train.copy(), test.copy())
    out_shuffled, _ = build(shuffled, test.copy())
    pd.testing.assert_frame_equal(out.drop(columns="SalePrice"),
                                  out_shuffled.drop(columns="SalePrice"))
    assert out_shuffled["SalePrice"].tolist() == shuffled["SalePrice"].tolist()


def test_total_sf_is_basement_plus_both_floors(demo):
    train, test = demo
    rows = houses(train, TotalBsmtSF=[800, 0], **{"1stFlrSF": [900, 1200], "2ndFlrSF": [700, 0]})
    out, _ = build(rows, test)
    assert out["TotalSF"].tolist() == [2400, 1200]
    assert out["HasBasement"].tolist() == [1, 0] and out["Has2ndFloor"].tolist() == [1, 0]


def test_house_age_counts_years_at_sale_and_is_never_negative(demo):
    train, test = demo
    rows = houses(train, YearBuilt=[1990, 2008], YearRemodAdd=[2000, 2009], YrSold=[2007, 2007])
    out, _ = build(rows, test)
    assert out["HouseAge"].tolist() == [17, 0] and out["RemodAge"].tolist() == [7, 0]
    out_train, out_test = build(train, test)
    assert (out_train["HouseAge"] >= 0).all() and (out_test["RemodAge"] >= 0).all()


def test_quality_ratings_become_ordinal_numbers(demo):
    train, test = demo
    rows = houses(train, ExterQual=["Ex", "Fa"], KitchenQual=["Gd", None],
                  FireplaceQu=["Po", None], BsmtExposure=["Gd", "No"],
                  GarageFinish=[None, "RFn"], PoolQC=[None, "TA"])
    out, _ = build(rows, test)
    assert out["ExterQual"].tolist() == [5, 2]
    assert out["FireplaceQu"].tolist() == [1, 0]  # NA: no fireplace, below Po
    assert out["BsmtExposure"].tolist() == [4, 1]
    assert out["GarageFinish"].tolist() == [0, 2] and out["PoolQC"].tolist() == [0, 3]
    assert out["KitchenQual"].iloc[0] == 4 and np.isnan(out["KitchenQual"].iloc[1])  # unknown


def test_build_fills_what_means_none_and_keeps_unknowns_missing(demo):
    train, test = demo
    _, out = build(train, test)
    no_basement = test["BsmtQual"].isna()
    assert (out.loc[no_basement, ["TotalBsmtSF", "BsmtFullBath"]] == 0).all().all()
    assert out["Alley"].notna().all() and out["MiscFeature"].notna().all()
    garage_unknown = test["GarageCars"].isna() & test["GarageType"].notna()
    assert garage_unknown.any() and out.loc[garage_unknown, "GarageCars"].isna().all()
    assert (out.loc[garage_unknown, "HasGarage"] == 1).all()
    assert out["MSZoning"].isna().sum() == test["MSZoning"].isna().sum()


def test_keep_train_rows_drops_only_huge_cheap_houses():
    frame = pd.DataFrame({"GrLivArea": [4500, 4500, 3000, 5000, 4000, 4001],
                          "SalePrice": [200_000, 350_000, 100_000, 299_999, 150_000, 300_000]},
                         index=[10, 11, 12, 13, 14, 15])  # a fold's rows keep their labels
    keep = keep_train_rows(frame)
    assert isinstance(keep, np.ndarray) and keep.dtype == bool
    assert keep.tolist() == [False, True, True, False, True, True]
