"""Time-ordered CV (kit/splits/time.py): TimeSeriesSplit's folds, ties, groups, the stored
split, fold features in time order, the ensemble's rule, and a dated run end to end."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_in_process, write_config
from sklearn.model_selection import TimeSeriesSplit

from kit.config import CVConfig, load_config
from kit.errors import ConfigError, DataError
from kit.run_folder import read_folds, write_folds
from kit.splits.folds import Split, fold_rows, split_key
from kit.splits.time import (
    check_time_split,
    describe_time_split,
    make_time_split,
    parse_times,
    read_times,
)
from kit.tasks.tabular.fold_features import fit_fold_columns, time_inner_split


def time_cv(**settings) -> CVConfig:
    return CVConfig(strategy="time", time="date", **settings)


# --- the folds -----------------------------------------------------------------------------


@pytest.mark.parametrize("n, n_splits, gap", [(20, 2, 0), (23, 3, 0), (100, 5, 0), (101, 5, 3),
                                              (57, 4, 2), (12, 3, 1)])
def test_time_folds_equal_time_series_split_fold_for_fold(n, n_splits, gap):
    times = np.arange(n, dtype=np.float64) * 7.5  # unique and sorted
    split = make_time_split(times, time_cv(n_splits=n_splits, gap=gap))
    expected = list(TimeSeriesSplit(n_splits, gap=gap).split(times))
    assert len(expected) == n_splits
    for k, (train, valid) in enumerate(expected):
        got_train, got_valid = fold_rows(split, k, n_splits)
        np.testing.assert_array_equal(got_train, train)
        np.testing.assert_array_equal(got_valid, valid)
    assert (split.folds[: n - n_splits * (n // (n_splits + 1)), 0] == -1).all()  # first block


def test_rows_are_ordered_by_time_not_by_their_place_in_the_file():
    n, rng = 60, np.random.default_rng(0)
    order = rng.permutation(n)  # row i holds time order[i]
    shuffled = make_time_split(order.astype(float), time_cv(n_splits=4, gap=1))
    for k, (train, valid) in enumerate(TimeSeriesSplit(4, gap=1).split(np.zeros(n))):
        got_train, got_valid = fold_rows(shuffled, k, 4)
        assert sorted(order[got_train]) == list(train)
        assert sorted(order[got_valid]) == list(valid)


def test_rows_sharing_a_timestamp_are_never_split_and_valid_rows_come_later():
    days = np.repeat(np.arange(30), np.random.default_rng(1).integers(1, 6, 30)).astype(float)
    split = make_time_split(days, time_cv(n_splits=5, gap=2))
    check_time_split(split, days, 5)
    for k in range(5):
        train, valid = fold_rows(split, k, 5)
        assert days[train].max() < days[valid].min()
        # the gap: at least two distinct days lie between the last train and first valid day
        assert len(np.unique(days[(days > days[train].max()) & (days < days[valid].min())])) \
            == 2
    for day in np.unique(days):  # one fold and one train_from per day
        assert len(set(split.folds[days == day, 0])) == 1
        assert len(set(split.train_from[days == day])) == 1


def test_a_group_follows_its_first_timestamp():
    days = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], dtype=float)
    groups = np.array(["a", "b", "c", "d", "e", "f", "g", "h", "a", "i", "j", "a"])
    split = make_time_split(days, time_cv(n_splits=3), groups)
    assert len(set(split.folds[groups == "a", 0])) == 1
    assert split.folds[0, 0] == -1  # "a" starts on day 0: its day-8 and day-11 rows train only
    check_time_split(split, days, 3, groups)


def test_dates_parse_and_the_layout_prints_each_fits_periods():
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=12, freq="D")
                          .strftime("%Y-%m-%d")})
    times = read_times(frame, time_cv(n_splits=3, gap=1), "train.csv")
    assert times.dtype == np.dtype("datetime64[ns]")
    lines = describe_time_split(make_time_split(times, time_cv(n_splits=3, gap=1)), times,
                                time_cv(n_splits=3, gap=1))
    assert lines[1] == ("  fit 0: train 2024-01-01 .. 2024-01-02 (2 rows)  valid 2024-01-04 .. "
                        "2024-01-06 (3 rows)")
    assert lines[-1] == "  never validated (trains only): 2024-01-01 .. 2024-01-03 (3 rows)"


def test_numbers_written_as_text_are_numbers():
    times = parse_times(pd.Series(["3", "1", "2.5"]), "cv.time")
    np.testing.assert_array_equal(times, [3.0, 1.0, 2.5])


@pytest.mark.parametrize("values, fragment", [
    (["2024-01-01", "soon", "2024-01-03"], "value 'soon' (row 1) parses neither"),
    ([1.0, None, 3.0], "row 1 has no time"),
    ([True, False, True], "booleans"),
])
def test_a_time_column_that_does_not_parse_names_the_row(values, fragment):
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_times(pd.Series(values), "train.csv: cv.time = 'date'")


def test_a_missing_time_column_names_the_columns():
    with pytest.raises(DataError, match=r"cv.time = 'date' is not a column of train"):
        read_times(pd.DataFrame({"day": [1, 2]}), time_cv(), "train.csv")
    assert read_times(pd.DataFrame({"day": [1, 2]}), CVConfig(), "train.csv") is None


def test_a_gap_that_empties_a_fit_and_too_many_ties_are_refused():
    with pytest.raises(DataError, match=r"cv.gap = 9 leaves fit 0 with no training rows.*"
                                        r"below 4"):
        make_time_split(np.arange(20.0), time_cv(n_splits=4, gap=9))
    with pytest.raises(ValueError):  # scikit-learn refuses the same gap
        list(TimeSeriesSplit(4, gap=9).split(np.arange(20.0)))
    ties = np.array([0.0] * 15 + [1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(DataError, match="validation block is empty"):
        make_time_split(ties, time_cv(n_splits=4))
    with pytest.raises(DataError, match="need at least 6 rows"):
        make_time_split(np.arange(5.0), time_cv(n_splits=5))


# --- the stored split and its hash ---------------------------------------------------------


def test_folds_csv_stores_each_fits_training_rows(tmp_path):
    ids, times = np.arange(100, 130), np.arange(30.0)
    split = make_time_split(times, time_cv(n_splits=3, gap=1))
    write_folds(tmp_path, ids, split, "abc")
    saved = pd.read_csv(tmp_path / "folds.csv")
    assert list(saved.columns) == ["id", "fold", "train_from", "split"]
    back = read_folds(tmp_path, ids)
    for k in range(3):
        for got, want in zip(fold_rows(back, k, 3), fold_rows(split, k, 3), strict=True):
            np.testing.assert_array_equal(got, want)
    plain = read_folds(tmp_path, ids)  # an old folds.csv without train_from reads as before
    write_folds(tmp_path, ids, Split(plain.folds.clip(0)), "old")
    assert read_folds(tmp_path, ids).train_from is None


def test_the_split_hash_covers_the_time_values_the_column_and_the_gap():
    ids, y, times = np.arange(40), np.arange(40) % 2, np.arange(40.0)
    base = split_key(ids, y, time_cv(n_splits=3), times=times)
    assert base == split_key(ids[::-1], y[::-1], time_cv(n_splits=3), times=times[::-1])
    assert base != split_key(ids, y, time_cv(n_splits=3, gap=1), times=times)
    assert base != split_key(ids, y, CVConfig(strategy="time", time="day", n_splits=3),
                             times=times)
    assert base != split_key(ids, y, time_cv(n_splits=3), times=times[::-1])
    assert base == split_key(ids, y, time_cv(n_splits=3, seed=7), times=times)  # no seed


# --- config, out of core, ensembles --------------------------------------------------------


def comp_config(tmp_path: Path, cv: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[competition]\nslug = "x"\n[data]\nid = "id"\ntarget = "y"\n[cv]\n{cv}\n')
    return path


@pytest.mark.parametrize("cv, fragment", [
    ('strategy = "time"', "needs cv.time"),
    ('strategy = "time"\ntime = "date"\nrepeats = 3', "cv.repeats = 3 under cv.strategy"),
    ('strategy = "hash"\ntime = "date"', "cv.time = 'date' applies to cv.strategy"),
    ('gap = 2', "cv.gap = 2 applies to cv.strategy"),
    ('strategy = "time"\ntime = "date"\ngap = -1', "cv.gap = -1: give 0 or more"),
])
def test_time_settings_that_do_not_fit_are_config_errors(tmp_path, cv, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        load_config(comp_config(tmp_path, cv))
    assert "config.toml" in str(info.value) and "\n" not in str(info.value)


def test_out_of_core_refuses_a_time_split(tmp_path):
    from kit.config import Config
    from kit.out_of_core.run import check_supported

    cfg = Config().replace(cv=time_cv(), model=dataclasses.replace(Config().model, name="xgb"))
    with pytest.raises(ConfigError, match='cv.strategy = "time"'):
        check_supported(cfg, tmp_path, "data.out_of_core = \"on\"")


@pytest.mark.parametrize("method", ["weighted", "hill", "stack"])
def test_blend_weights_on_a_time_split_are_fitted_on_earlier_folds_only(method):
    """Fold k's blended rows never depend on a later fold's rows; the first fold's rows get
    the members' plain average (nothing precedes them)."""
    from kit.ensembles.blend import Stack, blend
    from kit.metrics.registry import get_metric

    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(4), [50, 50, 50, 300])  # the last fold outweighs the rest
    n = len(folds)
    labels = rng.integers(0, 2, n)
    good = np.clip(labels + rng.normal(0, 0.3, n), 0.01, 0.99)
    noisy = rng.uniform(0.01, 0.99, n)
    members = np.stack([np.stack([1 - p, p], 1) for p in (good, noisy)])

    def blended(oof, forward=True):
        stack = Stack("classification", ["0", "1"], np.arange(n), folds, labels, labels,
                      oof, np.arange(3), oof[:, :3], forward=forward)
        return blend(stack, method, get_metric("logloss")).oof

    later = members.copy()  # in the last fold the good member goes wrong, the other right
    later[0, folds == 3] = np.stack([labels, 1 - labels], 1)[folds == 3] * 0.98 + 0.01
    later[1, folds == 3] = np.stack([1 - labels, labels], 1)[folds == 3] * 0.98 + 0.01
    first, again = blended(members), blended(later)
    np.testing.assert_allclose(first[folds < 3], again[folds < 3])  # the future chose nothing
    np.testing.assert_allclose(first[folds == 0], members[:, folds == 0].mean(0))
    assert not np.allclose(blended(members, False)[folds < 3], blended(later, False)[folds < 3])


# --- fold features never see later rows ----------------------------------------------------


def test_the_inner_split_of_fold_features_fits_on_earlier_rows_only():
    days = np.repeat(np.arange(20), 3).astype(float)
    for fit, held in time_inner_split(days, 4):
        assert days[fit].max() < days[held].min()


def test_fold_feature_columns_never_use_a_later_rows_label():
    n = 60
    train = pd.DataFrame({"day": np.arange(n) // 2, "label": np.arange(n) % 2})

    def latest_seen(fit, frame):  # the latest day whose labels built this column
        return pd.DataFrame({"seen": float(fit["day"].max())}, index=frame.index)

    rows, valid = np.arange(40), np.arange(40, 50)
    cols, _ = fit_fold_columns([latest_seen], train, rows, valid, train.iloc[50:], target="label",
                               n_inner=4, seed=0, times=train["day"].to_numpy(float))
    fit_cols = cols.loc[rows, "seen"]
    first = fit_cols.isna()
    assert first.any() and (train.loc[rows[first], "day"] < 5).all()  # no past: NaN
    assert (fit_cols[~first] < train.loc[rows[~first], "day"]).all()
    assert (cols.loc[valid, "seen"] == 19).all()  # validation: every training row's labels


# --- end to end through the scripts -------------------------------------------------------

def dated_data(folder: Path, days: int = 60, per_day: int = 4) -> None:
    """Four rows a day for `days` days; the label follows x, the test days come after."""
    rng = np.random.default_rng(0)

    def table(n_days, start_day, first_id):
        n = n_days * per_day
        dates = pd.Timestamp("2024-03-01") + pd.to_timedelta(
            np.repeat(np.arange(start_day, start_day + n_days), per_day), unit="D")
        return pd.DataFrame({"id": np.arange(first_id, first_id + n),
                             "date": dates.strftime("%Y-%m-%d"),
                             "lvl3": rng.choice(["a", "b", "c"], n), "x": rng.normal(size=n)})

    train, test = table(days, 0, 1), table(10, days, 10_000)
    train["label"] = (train["x"] + rng.normal(scale=0.5, size=len(train)) > 0).astype(int)
    train = train.sample(frac=1, random_state=0)  # the file's order is not the time order
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "label": 0}).to_csv(folder / "sample_submission.csv",
                                                        index=False)


def script(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """scripts/<name>.py in this process (conftest.run_in_process): (its outcome, summary)."""
    summary = tmp_path / f"{name}-{len(list(tmp_path.glob('*.json')))}.json"
    proc = run_in_process(f"{name}.py", *args, "--summary-json", summary,
                          env={"KIT_COMPETITIONS_ROOT": str(tmp_path / "comps")})
    return proc, (json.loads(summary.read_text()) if summary.exists() else {})


def train(tmp_path: Path, *extra: str):
    return script(tmp_path, "train", "--comp", "dated", "--data", str(tmp_path / "data"),
                  "--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"),
                  *extra)


@pytest.fixture(scope="module")
def dated(tmp_path_factory):
    root = tmp_path_factory.mktemp("dated")
    dated_data(root / "data")
    write_config(root / "comps" / "dated", {
        "features": {"numeric": ["x"], "categorical": [], "target_encode": ["lvl3"]},
        "model": {"name": "gbdt"}, "model.params.gbdt": {"max_iter": 30},
        "cv": {"strategy": "time", "time": "date", "n_splits": 4, "gap": 2}})
    proc, summary = train(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, proc, summary


def test_a_dated_run_prints_its_layout_and_scores_the_validated_rows(dated):
    root, proc, summary = dated
    assert ("time split on cv.time = 'date', gap 2 timestamp(s): 4 expanding-window fits"
            in proc.stdout)
    assert "  fit 0: train 2024-03-01 .. 2024-03-10 (40 rows)  valid 2024-03-13 .. " \
           "2024-03-24 (48 rows)" in proc.stdout
    run = Path(summary["run_dir"])
    folds = pd.read_csv(run / "folds.csv")
    assert (folds["fold"] == -1).sum() == 48  # the first of five 12-day blocks trains only
    oof = pd.read_parquet(run / "oof.parquet")
    assert len(oof) == 192 and set(oof["fold"]) == {0, 1, 2, 3}
    scores = json.loads((run / "scores.json").read_text())
    assert scores["oof_rows"] == 192 and len(scores["fold_scores"]) == 4
    assert "on 192 of 240 rows" in proc.stdout
    dates = pd.read_csv(root / "data" / "train.csv").set_index("id")["date"]
    for k in range(4):  # each fit trained on earlier days only, two days of gap
        valid = oof.loc[oof["fold"] == k, "id"]
        train_ids = folds.loc[folds["train_from"] <= k, "id"]
        last, first = dates.loc[train_ids].max(), dates.loc[valid].min()
        assert (pd.Timestamp(first) - pd.Timestamp(last)).days == 3
    assert 0.6 < summary["cv"]["oof"] <= 1.0  # x decides the label


def test_a_dated_run_resumes_to_the_same_run_and_predicts_its_submission(dated):
    root, _, full = dated
    proc, cut = train(root, "--fits", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc, resumed = train(root, "--resume", cut["run_dir"], "--fits", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(full["run_dir"])
    pd.testing.assert_frame_equal(pd.read_parquet(Path(resumed["run_dir"]) / "oof.parquet"),
                                  pd.read_parquet(run / "oof.parquet"))
    proc, predicted = script(root, "predict", "--run", str(run), "--data", str(root / "data"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(predicted["submission"]),
                                  pd.read_csv(run / "submission.csv"))


def test_an_ensemble_of_dated_runs_blends_and_hill_climbs_forward(dated):
    root, _, full = dated
    proc, other = train(root, "--set", "model.params.gbdt.max_iter=10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    members = [full["run_dir"], other["run_dir"]]
    common = ["--comp", "dated", "--runs", str(root / "runs"), "--submissions",
              str(root / "subs"), "--data", str(root / "data")]
    proc, soft = script(root, "ensemble", *common, *members)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "192 OOF rows" in proc.stdout  # aligned on the validated rows
    proc, hill = script(root, "ensemble", *common, "--method", "hill", *members)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = min(int(k) for k in hill["fold_weights"])  # the first validated block: equal
    assert hill["fold_weights"][str(first)] == pytest.approx([0.5, 0.5])
