import numpy as np
import pandas as pd
import pytest

from kit.errors import SubmissionError
from kit.submission import build_submission, validate_file, validate_submission, write_submission


@pytest.fixture
def sample():
    return pd.DataFrame({"PassengerId": [892, 893, 894], "Survived": [0, 1, 0]})


def test_build_orders_rows_like_the_sample_and_casts_labels(sample):
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    frame = build_submission(np.array([894, 892, 893]), proba, [0, 1], sample)
    assert frame["PassengerId"].tolist() == [892, 893, 894]
    assert frame["Survived"].tolist() == [0, 1, 1] and frame["Survived"].dtype == np.int64
    validate_submission(frame, sample)


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
        write_submission(sample.iloc[:2], tmp_path / "sample.csv", dest)
    assert dest.read_text() == "previous good file\n"  # not clobbered
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left behind
    write_submission(sample, tmp_path / "sample.csv", dest)
    validate_file(dest, tmp_path / "sample.csv")


def test_unwritable_labels_are_a_submission_error(sample):
    with pytest.raises(SubmissionError, match="cannot be written"):
        build_submission(np.array([892, 893, 894]), np.eye(2)[[0, 1, 0]], ["dead", "alive"],
                         sample)
