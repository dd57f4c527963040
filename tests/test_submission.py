"""kit.submission: the one rule from metric to submission form, building in the sample's
order, validation, atomic writes, the streamed path and the demo mark."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.errors import ConfigError, SubmissionError
from kit.metrics.registry import METRICS
from kit.submission import (
    build_submission,
    demo_trained,
    submission_form,
    validate_file,
    validate_submission,
    write_submission,
)


def form(sample, metric="accuracy", kind="auto", classes=(0, 1)):
    """The form for `metric`; classes matter to probability columns only."""
    problem = METRICS[metric].problem
    return submission_form(sample, metric=metric, kind=kind, problem=problem,
                           classes=list(classes) if problem == "classification" else None)


@pytest.fixture
def sample():
    return pd.DataFrame({"PassengerId": [892, 893, 894], "Survived": [0, 1, 0]})


def test_build_orders_rows_like_the_sample_and_casts_labels(sample):
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    frame = build_submission(np.array([894, 892, 893]), proba, [0, 1], sample, form(sample))
    assert frame["PassengerId"].tolist() == [892, 893, 894]
    assert frame["Survived"].tolist() == [0, 1, 1] and frame["Survived"].dtype == np.int64
    validate_submission(frame, sample, form=form(sample))


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f[["Survived", "PassengerId"]], "columns"),
    (lambda f: f.rename(columns={"Survived": "survived"}), "columns"),
    (lambda f: f.iloc[:2], "2 rows, the sample has 3"),
    (lambda f: f.assign(PassengerId=[892, 892, 894]), "duplicate ids"),
    (lambda f: f.assign(PassengerId=[892, 893, 999]), r"missing \['894'\], unexpected \['999'\]"),
    (lambda f: f.assign(Survived=[0.0, 1.0, 0.5]), "dtype float64, the sample has int64"),
    (lambda f: f.assign(Survived=[0, None, 1]), "missing values"),
    (lambda f: f.assign(PassengerId=[892, None, 894]), r"missing ids \(rows \[1\]\)"),  # fuzz-found
])
def test_each_mismatch_is_rejected(sample, mutate, message):
    with pytest.raises(SubmissionError, match=message):
        validate_submission(mutate(sample.copy()), sample)


def test_bad_submission_is_never_written(tmp_path, sample):
    sample.to_csv(tmp_path / "sample.csv", index=False)
    dest = tmp_path / "sub.csv"
    dest.write_text("previous good file\n")
    with pytest.raises(SubmissionError):
        write_submission(sample.iloc[:2], tmp_path / "sample.csv", dest, form(sample))
    assert dest.read_text() == "previous good file\n"  # not clobbered
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left behind
    write_submission(sample, tmp_path / "sample.csv", dest, form(sample))
    validate_file(dest, tmp_path / "sample.csv")


def test_unwritable_labels_are_a_submission_error(sample):
    with pytest.raises(SubmissionError, match="cannot be written"):
        build_submission(np.array([892, 893, 894]), np.eye(2)[[0, 1, 0]], ["dead", "alive"],
                         sample, form(sample))


# --- regression values -------------------------------------------------------------------------


@pytest.fixture
def price_sample():
    return pd.DataFrame({"Id": [1461, 1462, 1463], "SalePrice": [169277.05, 187758.39, 183583.68]})


def test_values_keep_full_float64_precision_through_the_csv(tmp_path, price_sample):
    price_sample.to_csv(tmp_path / "sample.csv", index=False)
    values = np.array([[123456.78901234], [0.1 + 0.2], [2 / 3]])  # 0.30000000000000004
    rmse = form(price_sample, "rmse")
    frame = build_submission(np.array([1463, 1461, 1462]), values, [], price_sample, rmse)
    assert frame["SalePrice"].dtype == np.float64
    write_submission(frame, tmp_path / "sample.csv", tmp_path / "sub.csv", rmse)
    back = validate_file(tmp_path / "sub.csv", tmp_path / "sample.csv", metric="rmse")
    assert back["Id"].tolist() == [1461, 1462, 1463]
    assert back["SalePrice"].tolist() == [0.1 + 0.2, 2 / 3, 123456.78901234]  # bit for bit


@pytest.mark.parametrize("bad, message", [
    (np.nan, "column 'SalePrice' has missing values"),
    (np.inf, r"non-finite values \(inf\) in rows \[1\]"),
    (-np.inf, r"non-finite values \(inf\) in rows \[1\]"),
])
def test_a_value_that_is_not_a_finite_number_is_rejected(price_sample, bad, message):
    frame = price_sample.assign(SalePrice=[1.0, bad, 2.0])
    for metric in ("rmse", "rmsle"):
        with pytest.raises(SubmissionError, match=message):
            validate_submission(frame, price_sample, form=form(price_sample, metric))


def test_a_negative_value_is_rejected_under_rmsle_only(tmp_path, price_sample):
    frame = price_sample.assign(SalePrice=[1.0, 2.0, -0.5])
    with pytest.raises(SubmissionError, match=r"negative values in rows \[2\], which rmsle"):
        validate_submission(frame, price_sample, form=form(price_sample, "rmsle"))
    validate_submission(frame, price_sample, form=form(price_sample, "rmse"))
    price_sample.to_csv(tmp_path / "sample.csv", index=False)
    dest = tmp_path / "sub.csv"
    with pytest.raises(SubmissionError, match="negative values"):
        write_submission(frame, tmp_path / "sample.csv", dest, form(price_sample, "rmsle"))
    assert not dest.exists()


def test_build_clips_negative_values_at_zero_under_rmsle_only(price_sample):
    values = np.array([[-3.5], [0.0], [2.5]])
    ids = price_sample["Id"].to_numpy()
    rmsle = form(price_sample, "rmsle")
    clipped = build_submission(ids, values, [], price_sample, rmsle)
    assert clipped["SalePrice"].tolist() == [0.0, 0.0, 2.5]
    validate_submission(clipped, price_sample, form=rmsle)
    kept = build_submission(ids, values, [], price_sample, form(price_sample, "rmse"))
    assert kept["SalePrice"].tolist() == [-3.5, 0.0, 2.5]


def test_values_for_a_sample_with_integer_placeholders_are_written(tmp_path):
    sample = pd.DataFrame({"datetime": ["2011-01-20 00:00:00", "2011-01-20 01:00:00"],
                           "count": [0, 0]})
    sample.to_csv(tmp_path / "sample.csv", index=False)
    frame = build_submission(sample["datetime"].to_numpy(), np.array([[12.5], [3.25]]), [],
                             sample, form(sample, "rmsle"))
    write_submission(frame, tmp_path / "sample.csv", tmp_path / "sub.csv", form(sample, "rmsle"))
    assert pd.read_csv(tmp_path / "sub.csv")["count"].tolist() == [12.5, 3.25]


def test_probabilities_for_a_sample_with_integer_placeholders_stay_probabilities(tmp_path):
    """An AUC competition's sample often holds 0 in the target column: `proba` must not be
    cast to it (every probability would become 0)."""
    sample = pd.DataFrame({"id": [7, 8, 9], "target": [0, 0, 0]})
    sample.to_csv(tmp_path / "sample.csv", index=False)
    proba = np.array([[0.9, 0.1], [0.35, 0.65], [0.5, 0.5]])
    auc = form(sample, "auc")
    frame = build_submission(np.array([9, 7, 8]), proba, [0, 1], sample, auc)
    write_submission(frame, tmp_path / "sample.csv", tmp_path / "sub.csv", auc)
    written = pd.read_csv(tmp_path / "sub.csv")
    assert written["id"].tolist() == [7, 8, 9]
    assert written["target"].tolist() == [0.65, 0.5, 0.1]


def test_a_streamed_submission_matches_the_sample_chunk_by_chunk(tmp_path):
    from kit.out_of_core.submission import sample_head, write_streamed_submission

    sample_path = tmp_path / "sample.csv"
    pd.DataFrame({"id": [10, 11, 12, 13], "target": 0.5}).to_csv(sample_path, index=False)
    proba = np.array([[0.8, 0.2], [0.4, 0.6], [0.5, 0.5], [0.1, 0.9]])

    def batches(ids):
        yield np.array(ids[:2]), proba[:2]
        yield np.array(ids[2:]), proba[2:len(ids)]

    auc = form(sample_head(sample_path), "auc")
    dest = write_streamed_submission(batches([10, 11, 12, 13]), [0, 1], sample_path,
                                     sample_head(sample_path), tmp_path / "sub.csv", auc)
    written = pd.read_csv(dest)
    assert written["id"].tolist() == [10, 11, 12, 13]
    np.testing.assert_allclose(written["target"], proba[:, 1])
    with pytest.raises(SubmissionError, match=r"row 2 of the test file has id '13', .* has "
                                              r"'12' there"):
        write_streamed_submission(batches([10, 11, 13, 12]), [0, 1], sample_path,
                                  sample_head(sample_path), tmp_path / "bad.csv", auc)
    assert not (tmp_path / "bad.csv").exists() and not list(tmp_path.glob(".bad*"))


# --- the form follows the metric (kit.submission.submission_form) ------------------------------


@pytest.mark.parametrize("metric, kind", [("accuracy", "label"), ("f1_macro", "label"),
                                          ("auc", "proba"), ("logloss", "proba"),
                                          ("rmse", "value"), ("rmsle", "value")])
def test_auto_writes_what_the_metric_scores(sample, metric, kind):
    assert form(sample, metric).kind == kind


def test_auc_with_kind_auto_writes_probabilities_not_labels(tmp_path, sample):
    """issue 27: `metric = "auc"` and kind "auto" wrote hard 0/1 labels."""
    sample.to_csv(tmp_path / "sample.csv", index=False)
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    auc = form(sample, "auc")
    frame = build_submission(sample["PassengerId"].to_numpy(), proba, [0, 1], sample, auc)
    write_submission(frame, tmp_path / "sample.csv", tmp_path / "sub.csv", auc)
    assert pd.read_csv(tmp_path / "sub.csv")["Survived"].tolist() == [0.8, 0.1, 0.6]


def test_a_multiclass_probability_metric_writes_one_column_per_class_as_the_sample_names_them(
        tmp_path):
    """issue 27: kind "proba" wrote the last class's probability only."""
    sample = pd.DataFrame({"id": [1, 2], "Class_3": 0.0, "Class_1": 0.0, "Class_2": 0.0})
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])  # classes "1", "2", "3"
    logloss = form(sample, "logloss", classes=["1", "2", "3"])
    frame = build_submission(np.array([1, 2]), proba, ["1", "2", "3"], sample, logloss)
    assert list(frame.columns) == ["id", "Class_3", "Class_1", "Class_2"]
    np.testing.assert_allclose(frame[["Class_1", "Class_2", "Class_3"]].to_numpy(), proba)
    validate_submission(frame, sample, form=logloss)
    exact = pd.DataFrame({"id": [1], "b": [0], "a": [0]})  # columns named by the class itself
    assert form(exact, "auc", classes=["a", "b"]).class_of == (1, 0)


def test_probability_columns_that_do_not_name_the_classes_are_refused_by_name():
    sample = pd.DataFrame({"id": [1], "A": [0.0], "B": [0.0], "C": [0.0]})
    with pytest.raises(SubmissionError, match=r"columns \['A', 'B', 'C'\] do not name the "
                                              r"classes \['cat', 'dog', 'eel'\]"):
        form(sample, "logloss", classes=["cat", "dog", "eel"])
    with pytest.raises(SubmissionError, match=r"one column for a binary target"):
        form(sample.iloc[:, :2], "logloss", classes=["cat", "dog", "eel"])
    with pytest.raises(SubmissionError, match=r"3 prediction columns .* writes one"):
        form(sample, "accuracy")


def test_integer_placeholders_take_floats_only_where_the_metric_scores_them(tmp_path, sample):
    sample.to_csv(tmp_path / "sample.csv", index=False)
    floats = sample.assign(Survived=[0.25, 0.5, 1.0])
    floats.to_csv(tmp_path / "sub.csv", index=False)
    validate_file(tmp_path / "sub.csv", tmp_path / "sample.csv", metric="auc")
    with pytest.raises(SubmissionError, match="dtype float64, the sample has int64"):
        validate_file(tmp_path / "sub.csv", tmp_path / "sample.csv", metric="accuracy")
    with pytest.raises(SubmissionError, match=r"probabilities, but rows \[0\] are outside"):
        validate_submission(floats.assign(Survived=[1.5, 0.5, 0.5]), sample,
                            form=form(sample, "auc"))


def test_a_kind_that_contradicts_the_metric_is_refused_or_warned(sample):
    with pytest.raises(ConfigError, match="submission.kind = 'value' does not fit metric "
                                          "'accuracy'"):
        form(sample, "accuracy", kind="value")
    with pytest.warns(UserWarning, match="metric 'auc' scores probabilities"):
        assert form(sample, "auc", kind="label").kind == "label"


# --- demo-trained files --------------------------------------------------------------------


def test_demo_trained_reads_the_mark_from_names_and_run_json(tmp_path):
    def run(name: str, demo: bool) -> Path:
        folder = tmp_path / "some_demo" / "runs" / name  # a "_demo" above the run: no mark
        (folder / "predict").mkdir(parents=True)
        (folder / "config.toml").write_text("")
        (folder / "run.json").write_text(json.dumps({"demo": demo}))
        return folder

    real, named, recorded = run("1_gbdt_raw", False), run("2_gbdt_raw_demo", False), \
        run("3_gbdt_raw", True)
    assert not demo_trained(real / "submission.csv")
    assert not demo_trained(real / "predict" / "submission.csv")
    assert demo_trained(named / "predict" / "submission.csv") and demo_trained(named)
    assert demo_trained(recorded / "submission.csv")
    assert demo_trained(tmp_path / "subs" / "20240101-120000_gbdt_raw_demo.csv")
    assert demo_trained(tmp_path / "runs" / "20240101-120000_ensemble_soft_demo-2")
    assert not demo_trained(tmp_path / "subs" / "20240101-120000_gbdt_raw.csv")


# --- ranked guesses: map@k (issue 30) -------------------------------------------------------

FERTILIZERS = ["10-26-26", "14-35-14", "17-17-17", "28-28", "Urea"]


@pytest.fixture
def ranked_sample():
    """Kaggle's layout (Playground S5E6): the placeholder shows three guesses."""
    return pd.DataFrame({"id": [750000, 750001],
                         "Fertilizer Name": ["14-35-14 10-26-26 Urea"] * 2})


def test_map_at_3_writes_the_top_three_classes_space_separated(tmp_path, ranked_sample):
    ranked = submission_form(ranked_sample, metric="map@3", classes=FERTILIZERS)
    assert (ranked.kind, ranked.k) == ("ranked", 3)
    proba = np.array([[0.1, 0.2, 0.3, 0.15, 0.25],   # 17-17-17, Urea, 14-35-14
                      [0.5, 0.1, 0.1, 0.2, 0.1]])    # 10-26-26, 28-28, then a tie: 14-35-14
    frame = build_submission(np.array([750001, 750000]), proba, FERTILIZERS, ranked_sample,
                             ranked)
    assert frame["Fertilizer Name"].tolist() == ["10-26-26 28-28 14-35-14",
                                                 "17-17-17 Urea 14-35-14"]
    path = write_submission(frame, _csv(tmp_path, ranked_sample), tmp_path / "sub.csv", ranked)
    assert path.read_text().splitlines()[1] == "750000,10-26-26 28-28 14-35-14"
    validate_file(path, tmp_path / "sample.csv", metric="map@3")


def _csv(tmp_path, frame):
    path = tmp_path / "sample.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("k, error, message", [
    (6, ConfigError, r"writes 6 guesses a row, but the target has 5 classes.*map@5"),
    (2, SubmissionError, r"placeholders hold 3 space-separated guesses.*writes 2.*map@3"),
])
def test_a_k_the_sample_or_the_classes_cannot_hold_is_refused(ranked_sample, k, error, message):
    with pytest.raises(error, match=message):
        submission_form(ranked_sample, metric=f"map@{k}", classes=FERTILIZERS)


def test_a_single_guess_placeholder_takes_any_k(ranked_sample):
    one = ranked_sample.assign(**{"Fertilizer Name": "Urea"})
    assert submission_form(one, metric="map@2", classes=FERTILIZERS).k == 2


@pytest.mark.parametrize("value, message", [
    ("Urea 28-28", r"must hold 3 space-separated guesses"),
    ("Urea Urea 28-28", r"repeats a guess in rows \[0\]"),
    ("Urea 28-28 Compost", r"guesses \['Compost'\], which are not among the classes"),
])
def test_a_ranked_file_with_bad_rows_is_refused(tmp_path, ranked_sample, value, message):
    ranked = submission_form(ranked_sample, metric="map@3", classes=FERTILIZERS)
    frame = ranked_sample.assign(**{"Fertilizer Name": [value, "Urea 28-28 10-26-26"]})
    with pytest.raises(SubmissionError, match=message):
        write_submission(frame, _csv(tmp_path, ranked_sample), tmp_path / "sub.csv", ranked)
    assert not (tmp_path / "sub.csv").exists()
