"""Submissions: built from test probabilities, checked against the sample, written atomically.

What a submission holds follows its metric, by one rule (`submission_form`): labels for a
label metric, probabilities for a probability metric (one column per class, named as the
sample names them), the top k classes of each row, space-separated, for a ranked metric
(map@k: "14-35-14 10-26-26 Urea"), values for a regression. A submission that does not match the
competition's sample submission (columns, order, ids, row count, dtypes, missing values)
is a SubmissionError, never a file.

    form = submission_form(sample, metric="auc", classes=[0, 1])
    frame = build_submission(ids, proba, [0, 1], sample, form)
    write_submission(frame, sample, "runs/<slug>/.../submission.csv", form)
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import ConfigError, SubmissionError
from kit.io import write_csv
from kit.metrics.registry import Metric, check_problem, get_metric, top_k

# `[submission] kind = "auto"` writes what the metric scores (kit.metrics.registry.SCORES)
AUTO_KIND = {"labels": "label", "probabilities": "proba", "ranked": "ranked", "values": "value"}


@dataclass(frozen=True)
class SubmissionForm:
    """What a submission holds after its id column: the sample's prediction `columns`, as
    labels, probabilities or values (`kind`), for `metric`."""

    kind: str  # "label" (a class per row), "proba" (a probability per column), "ranked"
    #            (the top k classes, space-separated), "value"
    metric: str
    columns: tuple[str, ...]  # the sample's prediction columns, in its order
    class_of: tuple[int, ...] = ()  # proba: each column's class index (given the classes)
    k: int = 0  # ranked: guesses per row
    classes: tuple[str, ...] = ()  # ranked: the names a guess may be (given the classes)

    @property
    def floats(self) -> bool:
        """Probabilities and values are floats, even where the sample holds 0 placeholders."""
        return self.kind in ("proba", "value")


def submission_form(sample: pd.DataFrame, *, metric: str | Metric, kind: str = "auto",
                    problem: str | None = None, classes: list | None = None,
                    source: str | Path = "") -> SubmissionForm:
    """The one rule from metric (a built-in's name, or the Metric resolve_metric gave),
    problem kind, `[submission] kind` and the sample to what a submission holds; with
    `classes`, which class each probability column is, and how many guesses a row can hold.

    >>> sample = pd.DataFrame({"PassengerId": [892, 893], "Survived": [0, 0]})
    >>> [submission_form(sample, metric=m).kind for m in ("auc", "accuracy", "map@3")]
    ['proba', 'label', 'ranked']
    """
    scored = check_problem(metric, problem) if isinstance(metric, Metric) else \
        get_metric(metric, problem)
    metric = scored.name
    if kind == "auto":
        kind = AUTO_KIND[scored.scores]
    elif (kind == "value") != (scored.scores == "values"):
        raise ConfigError(f"submission.kind = {kind!r} does not fit metric {metric!r}, which "
                              f"scores {scored.scores}; set submission.kind = \"auto\"")
    elif AUTO_KIND[scored.scores] != kind:
        warnings.warn(f"submission.kind = {kind!r} but metric {metric!r} scores "
                      f"{scored.scores}; Kaggle scores the file as it is: \"auto\" writes "
                      f"{scored.scores}", stacklevel=2)
    where = f"{source}: " if source else ""
    columns = tuple(str(c) for c in sample.columns[1:])
    if not columns:
        raise SubmissionError(f"{where}the sample has only the column {sample.columns[0]!r}; "
                              "a submission needs an id column and a prediction column")
    if kind != "proba" and len(columns) != 1:
        raise SubmissionError(
            f"{where}the sample has {len(columns)} prediction columns {list(columns)}, but "
            f"submission.kind = {kind!r} writes one; for one probability per class use a "
            "probability metric (auc, logloss) or submission.kind = \"proba\"")
    class_of = ()
    if kind == "proba" and classes is not None:
        class_of = _class_columns(columns, [str(c) for c in classes], where)
    if kind == "ranked":
        _check_guesses(scored, sample[columns[0]], classes, where)
        names = tuple(str(c) for c in classes) if classes is not None else ()
        return SubmissionForm(kind, scored.name, columns, (), scored.k, names)
    return SubmissionForm(kind, scored.name, columns, class_of)


def _check_guesses(metric: Metric, placeholders: pd.Series, classes: list | None,
                   where: str) -> None:
    """Refuse a k the run cannot fill (more guesses than classes) or the sample does not show
    (its placeholders hold another number of space-separated guesses than k)."""
    k = metric.k
    if classes is not None and k > len(classes):
        raise ConfigError(f"competition.metric = {metric.name!r} writes {k} guesses a row, but "
                          f"the target has {len(classes)} classes {list(classes)[:10]}; set k "
                          f"to at most {len(classes)} (e.g. map@{len(classes)})")
    counts = placeholders.dropna().astype(str).str.split().str.len()
    shown = set(counts.head(1000).tolist())
    if len(shown) == 1 and (n := shown.pop()) > 1 and n != k:  # one guess shows no count
        raise SubmissionError(f"{where}the sample's {placeholders.name!r} placeholders hold {n} "
                              f"space-separated guesses ({placeholders.iloc[0]!r}), but "
                              f"competition.metric = {metric.name!r} writes {k}; set the "
                              f"metric's k to {n} (e.g. map@{n})")


def _class_columns(columns: tuple[str, ...], names: list[str], where: str) -> tuple[int, ...]:
    """Each probability column's class index: one column is the positive (last) class of a
    binary target; several are named by class, exactly or after one shared prefix
    ("Class_1" for class "1", "Status_C" for "C")."""
    if len(columns) == 1 and len(names) == 2:
        return (1,)
    index = {name: i for i, name in enumerate(names)}
    for prefix in _prefixes(columns[0], names):
        stripped = [c[len(prefix):] if c.startswith(prefix) else None for c in columns]
        if sorted(map(str, stripped)) == sorted(names):
            return tuple(index[c] for c in stripped)
    raise SubmissionError(
        f"{where}the sample's prediction columns {list(columns)} do not name the classes "
        f"{names}: a probability submission writes one column per class (one column for a "
        "binary target); check data.target and data.sample_submission")


def _prefixes(column: str, names: list[str]) -> list[str]:
    """Candidate prefixes: what is left of `column` before a class name that ends it."""
    return sorted({column[:len(column) - len(n)] for n in names if column.endswith(n)}, key=len)


def read_sample(path: str | Path, nrows: int | None = None) -> pd.DataFrame:
    """The sample submission (its first `nrows` rows when given)."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(
            f"sample submission not found: {path}; it comes with the competition data "
            "(set data.sample_submission in the competition's config.toml)"
        )
    try:
        return pd.read_csv(path, nrows=nrows)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"cannot read sample submission {path}: {exc}") from None


def target_sample(sample: pd.DataFrame, cfg) -> pd.DataFrame:
    """The sample one target's run checks its submission against. A run with several
    targets submits one column per target (kit/pipeline/targets.py): each column's run
    (its data.target one of several cv.stratify_on columns, which the sample holds) sees the
    sample's id and its own column; any other run the sample as it is."""
    target = cfg.submission.target or cfg.data.target
    if len(cfg.cv.stratify_on) > 1 and len(sample.columns) > 2 and target in sample.columns[1:]:
        return sample[[sample.columns[0], target]]
    return sample


def check_target_columns(sample: pd.DataFrame, targets: tuple[str, ...], source: str) -> None:
    """A run with several targets: the sample holds an id, then exactly those columns (in
    any order: the submission takes the sample's)."""
    held = list(sample.columns[1:])
    if sorted(held) != sorted(targets):
        raise SubmissionError(
            f"{source}: the sample submission's columns {held} are not the targets "
            f"{list(targets)} (data.target): a run with several targets submits one column "
            "per target; make data.target list the sample's columns after its id")


def validate_submission(frame: pd.DataFrame, sample: pd.DataFrame, *, source: str = "",
                        form: SubmissionForm | None = None) -> None:
    """Raise SubmissionError naming the first mismatch between `frame` and `sample`. With a
    `form`, its prediction columns may be floats where the sample holds integers, and must
    be finite (probabilities in [0, 1]; non-negative under rmsle); without one, every
    column keeps the sample's type."""
    where = f"{source}: " if source else ""
    if list(frame.columns) != list(sample.columns):
        raise SubmissionError(
            f"{where}columns {list(frame.columns)} differ from the sample's "
            f"{list(sample.columns)} (names and order must match)"
        )
    if len(frame) != len(sample):
        raise SubmissionError(f"{where}{len(frame)} rows, the sample has {len(sample)}")
    id_col = sample.columns[0]
    _check_ids(frame, sample, id_col, where)
    for col in sample.columns:
        if frame[col].isna().any():
            raise SubmissionError(f"{where}column {col!r} has missing values")
        want, got = sample[col].dtype, frame[col].dtype
        predicted = form is not None and col != id_col
        if predicted and form.kind == "ranked":  # strings of k guesses, whatever the sample's
            _check_ranked(frame[col], col, where, form)
            continue
        if _kind(want) != _kind(got) and not (
                predicted and form.floats and _kind(want) == "int" and _kind(got) == "float"):
            # a label column must keep the sample's type (1 is not 1.0 to a scorer); a
            # probability or value goes where the sample holds placeholders (target = 0)
            raise SubmissionError(
                f"{where}column {col!r} has dtype {got}, the sample has {want}"
            )
        if predicted and _kind(got) == "float":
            _check_values(frame[col].to_numpy(np.float64), col, where, form)


def _check_ids(frame: pd.DataFrame, sample: pd.DataFrame, id_col: str, where: str) -> None:
    missing_id = frame[id_col].isna()
    if missing_id.any():  # before the id sets: a missing id is not an id string
        rows = frame.index[missing_id][:5].tolist()
        raise SubmissionError(f"{where}column {id_col!r} has missing ids (rows {rows})")
    dup = frame[id_col][frame[id_col].duplicated()]
    if len(dup):
        raise SubmissionError(f"{where}duplicate ids in {id_col!r}: {dup.head(5).tolist()}")
    ids, expected = set(frame[id_col].astype(str)), set(sample[id_col].astype(str))
    if ids != expected:
        missing, extra = sorted(expected - ids)[:5], sorted(ids - expected)[:5]
        raise SubmissionError(
            f"{where}ids in {id_col!r} differ from the sample: missing {missing}, "
            f"unexpected {extra}"
        )


def _check_ranked(column: pd.Series, col: str, where: str, form: SubmissionForm) -> None:
    """Each row holds k distinct guesses (known classes when the form has them)."""
    guesses = column.astype(str).str.split(expand=True)
    counts = guesses.notna().sum(axis=1).to_numpy()
    bad = np.flatnonzero(counts != form.k)
    if len(bad):
        raise SubmissionError(f"{where}column {col!r} must hold {form.k} space-separated "
                              f"guesses a row ({form.metric}); rows {bad[:5].tolist()} hold "
                              f"{counts[bad[:5]].tolist()}")
    values = guesses.to_numpy(dtype=object)
    same = np.zeros(len(values), bool)
    for i in range(form.k):  # k is small (map@3): pairs of columns, no per-row Python
        for j in range(i + 1, form.k):
            same |= values[:, i] == values[:, j]
    repeated = np.flatnonzero(same)
    if len(repeated):
        raise SubmissionError(f"{where}column {col!r} repeats a guess in rows "
                              f"{repeated[:5].tolist()}; each of the {form.k} guesses must differ")
    unknown = ~np.isin(values, form.classes) if form.classes else np.zeros(values.shape, bool)
    if unknown.any():
        raise SubmissionError(f"{where}column {col!r} guesses {sorted(set(values[unknown]))[:5]}"
                              f", which are not among the classes {list(form.classes)[:10]}")


def _check_values(values: np.ndarray, col: str, where: str, form: SubmissionForm) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise SubmissionError(f"{where}column {col!r} has non-finite values (inf) in rows "
                              f"{np.flatnonzero(bad)[:5].tolist()}; the model diverged")
    outside = (values < 0) | (values > 1)
    if form.kind == "proba" and outside.any():
        raise SubmissionError(f"{where}column {col!r} holds probabilities, but rows "
                              f"{np.flatnonzero(outside)[:5].tolist()} are outside [0, 1]")
    if form.metric == "rmsle" and (values < 0).any():
        raise SubmissionError(f"{where}column {col!r} has negative values in rows "
                              f"{np.flatnonzero(values < 0)[:5].tolist()}, which rmsle cannot "
                              "score")


def _kind(dtype) -> str:
    # int and float differ for Kaggle's scorer on label columns; object/str are one kind.
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "str"


def build_submission(ids: np.ndarray, pred: np.ndarray, classes: list, sample: pd.DataFrame,
                     form: SubmissionForm) -> pd.DataFrame:
    """The submission frame in the sample's row order, as `form` says: argmax labels in the
    sample's type, one probability per column, or regression values (full float64
    precision; clipped at 0 under rmsle, as it scores)."""
    id_col = sample.columns[0]
    frame = pd.DataFrame({id_col: ids})
    if form.kind == "label":
        frame[form.columns[0]] = _labels(pred, classes, sample[form.columns[0]])
    elif form.kind == "ranked":
        frame[form.columns[0]] = ranked_guesses(pred, classes, form.k)
    elif form.kind == "value":
        values = pred[:, 0].astype(np.float64)
        frame[form.columns[0]] = np.clip(values, 0, None) if form.metric == "rmsle" else values
    else:  # float64 even where the sample holds integer placeholders (a cast would give 0)
        if len(form.class_of) != len(form.columns):
            raise ValueError("a proba form needs the classes: submission_form(..., classes=)")
        for col, k in zip(form.columns, form.class_of):
            frame[col] = pred[:, k].astype(np.float64)
    if pd.api.types.is_integer_dtype(sample[id_col].dtype):
        frame[id_col] = frame[id_col].astype(sample[id_col].dtype)
    order = pd.Index(frame[id_col].astype(str)).get_indexer(sample[id_col].astype(str))
    if (order < 0).any():
        missing = sample[id_col][order < 0].head(5).tolist()
        raise SubmissionError(f"no prediction for sample ids {missing}")
    return frame.iloc[order].reset_index(drop=True)


def ranked_guesses(pred: np.ndarray, classes: list, k: int) -> np.ndarray:
    """Each row's top k classes by probability, best first, joined by spaces (the same
    top k the OOF score takes: kit.metrics.registry.top_k).

    >>> ranked_guesses(np.array([[0.2, 0.5, 0.3]]), ["a", "b", "c"], 2)
    array(['b c'], dtype=object)
    """
    names = np.asarray([str(c) for c in classes], dtype=object)[top_k(pred, k)]  # (N, k)
    joined = names[:, 0]
    for j in range(1, k):
        joined = joined + " " + names[:, j]
    return joined


def _labels(pred: np.ndarray, classes: list, column: pd.Series) -> pd.Series:
    """The argmax class of each row, in the sample column's type."""
    labels = pd.Series(np.asarray(classes, dtype=object)[pred.argmax(1)])
    try:
        return labels.astype(column.dtype)
    except (ValueError, TypeError):
        raise SubmissionError(
            f"predicted labels {list(classes)[:5]} cannot be written as the sample's "
            f"{column.dtype} column {column.name!r}; check data.target and "
            "submission.kind") from None


def write_submission(frame: pd.DataFrame, sample: pd.DataFrame | str | Path, dest: str | Path,
                     form: SubmissionForm) -> Path:
    """Validate `frame` against the sample submission (as read, or its file), then write it
    atomically to `dest`."""
    if not isinstance(sample, pd.DataFrame):
        sample = read_sample(sample)
    validate_submission(frame, sample, source=str(dest), form=form)
    return write_csv(dest, frame)


def form_for(cfg, sample: pd.DataFrame, metric: Metric, *, classes: list | None = None,
              source: str | Path = "") -> SubmissionForm:
    """submission_form for a run's config: its `[submission] kind` and problem kind. Every
    writer and checker of a run's submission (train, predict, ensemble, the kernel, submit)
    calls this one, so none of them judges a file by another form than the one written."""
    return submission_form(sample, metric=metric, kind=cfg.submission.kind,
                           problem=cfg.competition.problem, classes=classes, source=source)


def validate_file(path: str | Path, sample_path: str | Path, *, metric: str | Metric = "",
                  form: SubmissionForm | None = None) -> pd.DataFrame:
    """Check a submission CSV on disk (before `kaggle competitions submit`): against `form`,
    else the form `metric` gives with submission.kind "auto", else type for type."""
    frame, sample = _read_file(path), read_sample(sample_path)
    if form is None and metric:
        form = submission_form(sample, metric=metric, source=sample_path)
    validate_submission(frame, sample, source=str(path), form=form)
    return frame


def validate_run_file(path: str | Path, sample_path: str | Path, cfg,
                      metric: Metric) -> pd.DataFrame:
    """Check a run's submission on disk in the form its config wrote it (kind included):
    the kernel's final check and submit.py's. Several targets: each column in its own."""
    if len(cfg.data.targets) > 1:
        return validate_targets_file(path, sample_path, cfg, metric)
    frame, sample = _read_file(path), read_sample(sample_path)  # each read once
    validate_submission(frame, sample, source=str(path),
                        form=form_for(cfg, sample, metric, source=sample_path))
    return frame


def validate_targets_file(path: str | Path, sample_path: str | Path, cfg,
                          metric: Metric) -> pd.DataFrame:
    """Check a submission of several targets on disk: the sample's columns in its order,
    then each target column (with the id) against the form its own run wrote it in."""
    frame, sample = _read_file(path), read_sample(sample_path)
    check_target_columns(sample, cfg.data.targets, str(sample_path))
    if list(frame.columns) != list(sample.columns):
        raise SubmissionError(f"{path}: columns {list(frame.columns)} differ from the sample's "
                              f"{list(sample.columns)} (names and order must match)")
    for column in cfg.data.targets:
        part = [sample.columns[0], column]
        form = form_for(cfg, sample[part], metric, source=sample_path)
        validate_submission(frame[part], sample[part], source=str(path), form=form)
    return frame


def _read_file(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"submission file not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: not a readable CSV ({exc})") from None


# --- demo-trained files ---------------------------------------------------------------------

DEMO_MARK = re.compile(r"_demo(-\d+)?$")  # a run folder "..._demo" ("-2": a name collision)


def demo_trained(path: str | Path) -> bool:
    """Whether `path` (a submission, prediction file or run folder) was made by demo-trained
    runs: its name ends `_demo`, or the run folder holding it (within two levels) has a name
    ending `_demo` or "demo": true in run.json."""
    from kit.run_folder import is_run_folder

    path = Path(path).resolve()
    if DEMO_MARK.search(path.stem if path.suffix else path.name):
        return True
    for folder in [path, *path.parents][:4]:
        if is_run_folder(folder):  # the nearest run folder decides
            return bool(DEMO_MARK.search(folder.name)) or _records_demo(folder)
    return False


def _records_demo(run: Path) -> bool:
    """run.json says "demo": true (an unreadable one says nothing)."""
    from kit.run_folder import read_run_info

    try:
        return read_run_info(run).get("demo") is True
    except (OSError, ValueError, AttributeError):
        return False
