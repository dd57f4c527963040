"""Fuzzing: config loader, CSV and parquet readers, submission validator.

Property: a clean result or one of the kit's documented errors (a KitError subclass),
never a traceback from inside tomllib / pandas / pyarrow, never a hang.
"""

import os
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kit.config import Config, field_names, load_config
from kit.data.csv import read_csv
from kit.errors import ConfigError, DataError, KitError, SubmissionError
from kit.submission import validate_file

# `make test` replays the same 60 examples every run (derandomized: CI must not flake);
# KIT_FUZZ=explore draws 1000 fresh ones per test to hunt for new failures.
EXPLORE = os.environ.get("KIT_FUZZ") == "explore"
FUZZ = settings(max_examples=1000 if EXPLORE else 60, derandomize=not EXPLORE, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SECTIONS = ["competition", "data", "features", "model", "optim", "train", "cv", "submission",
            "track", "ensemble", "nonsense"]
values = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                   st.booleans(), st.text(string.printable, max_size=12),
                   st.lists(st.integers(0, 9), max_size=3))


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
            .replace("\r", "\\r").replace("\t", "\\t").replace("\x0b", "\\u000b") \
            .replace("\x0c", "\\f") + '"'
    return repr(value).lower() if isinstance(value, float) and "e" in repr(value) else repr(value)


@st.composite
def configs(draw) -> str:
    lines = []
    for section in draw(st.lists(st.sampled_from(SECTIONS), unique=True, max_size=4)):
        lines.append(f"[{section}]")
        # no such section, and one renamed away ([ensemble] fold_vote is train.fold_vote)
        known = {"nonsense": ["x"], "ensemble": ["fold_vote"]}.get(section) or \
            field_names(section)
        for key in draw(st.lists(st.sampled_from([*known, "typo_key"]), unique=True, max_size=4)):
            lines.append(f"{key} = {toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=configs())
def test_config_loader_structured(tmp_path, text):
    path = tmp_path / "fuzz" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as exc:
        assert str(path) in str(exc) or "--set" in str(exc)


@FUZZ
@given(raw=st.binary(max_size=200), override=st.text(max_size=30))
def test_config_loader_raw_bytes_and_overrides(tmp_path, raw, override):
    path = tmp_path / "raw" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)  # the error names the file
    path.write_text("[train]\nepochs = 3\n")
    try:
        load_config(path, overrides=[override])
    except ConfigError as exc:
        assert "--set" in str(exc) or override.strip() in str(exc), (override, str(exc))


cells = st.one_of(st.text(max_size=6), st.integers(-10, 10).map(str), st.just(""),
                  st.sampled_from(['"', '""', ",", "\n", "\r\n", "nan", "inf", "\x00", "é"]))


@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=1, max_size=4), max_size=6),
       tail=st.binary(max_size=8))
def test_csv_reader(tmp_path, rows, tail):
    path = tmp_path / "fuzz.csv"
    path.write_bytes("\n".join(",".join(r) for r in rows).encode("utf-8", "replace") + tail)
    try:
        frame = read_csv(path, required=["id"])
        assert isinstance(frame, pd.DataFrame) and "id" in frame.columns and len(frame)
    except DataError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(raw=st.binary(min_size=0, max_size=300), keep_magic=st.booleans())
def test_parquet_reader_on_corrupt_files(tmp_path, raw, keep_magic):
    from kit.data.stream import TabularStream

    path = tmp_path / "fuzz.parquet"
    good = tmp_path / "good.parquet"
    if not good.exists():
        pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50)}).to_parquet(good)
    data = good.read_bytes()
    # corrupt the middle of a real file (keeps the PAR1 magic) or write random bytes
    path.write_bytes(data[:20] + raw + data[20 + len(raw):] if keep_magic else raw)
    try:
        stream = TabularStream(path, columns=["a", "b"], transform=_identity, batch_size=8)
        rows = sum(len(b["a"]) for b in stream)
        assert rows <= 50
    except KitError as exc:
        assert "fuzz.parquet" in str(exc)


def _identity(frame):
    return {c: frame[c].to_numpy() for c in frame.columns}


def valid_submission(ids: list, labels: list, columns: list, metric: str) -> bool:
    """The oracle for a sample of ids 1, 2, 3 and integer placeholders 0: the same columns,
    each id once, labels 0 / 1 (under auc also probabilities in [0, 1]), none missing."""
    def label_ok(v):
        return (v in (0, 1) and not isinstance(v, float)) or (
            metric == "auc" and isinstance(v, float) and 0 <= v <= 1)

    return (columns == ["id", "target"] and len(ids) == 3 and sorted(map(str, ids)) == [
        "1", "2", "3"] and all(isinstance(i, int) for i in ids) and all(map(label_ok, labels)))


# Half the draws start from a valid submission, so both decisions are exercised every run.
some_ids = st.one_of(st.permutations([1, 2, 3]),
                     st.lists(st.sampled_from([1, 2, 3, 4, "x", None]), max_size=5))
some_labels = st.one_of(st.lists(st.sampled_from([0, 1]), min_size=3, max_size=3),
                        st.lists(st.sampled_from([0, 1, 0.5, "a", None]), max_size=5))
some_columns = st.one_of(st.just(["id", "target"]), st.sampled_from(
    [["target", "id"], ["id"], ["id", "target", "x"]]))


@FUZZ
@given(ids=some_ids, labels=some_labels, columns=some_columns, metric=st.sampled_from(["", "auc"]))
@example(ids=[3, 1, 2], labels=[0, 1, 1], columns=["id", "target"], metric="")  # accepted
@example(ids=[3, 1, 2], labels=[0, 0.5, 1], columns=["id", "target"], metric="auc")  # accepted
@example(ids=[3, 1, 2], labels=[0, 0.5, 1], columns=["id", "target"], metric="")  # refused
def test_submission_validator(tmp_path, ids, labels, columns, metric):
    """The validator's decision, accept or refuse, is the oracle's; a refusal names the file."""
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"id": [1, 2, 3], "target": [0, 0, 0]}).to_csv(sample, index=False)
    n = min(len(ids), len(labels))
    ids, labels = list(ids[:n]), list(labels[:n])
    frame = pd.DataFrame({"id": ids, "target": labels, "x": [0] * n})[columns]
    path = tmp_path / "sub.csv"
    frame.to_csv(path, index=False)
    expected = valid_submission(ids, labels, columns, metric)
    try:
        validate_file(path, sample, metric=metric)
        accepted = True
    except SubmissionError as exc:
        assert str(path) in str(exc)
        accepted = False
    assert accepted == expected, (ids, labels, columns, metric)


def test_unreadable_submission_file_is_a_submission_error(tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_text("id,target\n1,0\n")
    bad = tmp_path / "sub.csv"
    bad.write_bytes(b"")
    with pytest.raises(SubmissionError, match="sub.csv"):
        validate_file(bad, sample)
