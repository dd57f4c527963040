"""Ensembles over run folders: hard, soft and weighted voting on the prediction files.

Any run folder that honours the prediction-file contract (docs/architecture.md) can be a
member: a torch MLP with gradient-boosted trees on titanic, several CNNs on
digit-recognizer, or an earlier ensemble. Members are aligned by id; a run of another
competition, with other classes, or with missing or extra ids is refused.

- soft: the mean of the members' probabilities.
- weighted: sum_m w_m * p_m with w_m >= 0 and sum w_m = 1; weights given or fitted.
- hard: each member votes for its argmax class and the most votes win. A tie in votes goes
  to the tied class with the higher probability summed over members; a tie in that too
  (equal to 1e-12) to the lower class index, i.e. the earlier class in `classes`. The
  output is the one-hot of the winner, so the argmax-based submission builder and label
  metrics see exactly the vote; it is not a calibrated probability, so use soft voting for
  logloss / auc metrics and probability submissions (a warning says so).

Weight fitting minimises the blend's OOF log loss on the simplex (scipy SLSQP). Why not
the competition metric itself: accuracy and F1 are step functions of the weights (zero
gradient almost everywhere, many equal optima) and AUC depends on ranks only, so a direct
search overfits the OOF rows it searches on. The log loss of a blend is minus the mean log
of a linear function of the weights, hence smooth and convex: the optimum is global and
reproducible, and a proper scoring rule rewards the members that are right with
confidence. The cross-validated score fits weights on all folds but one, blends the
held-out fold with them, and scores the re-assembled OOF; that is the score to trust
(the in-sample one is optimistic) and the ensemble's oof.parquet holds those predictions.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit import paths
from kit.config import Config, load_resolved
from kit.ensemble_report import new_run_dir, sample_path, write_ensemble_run
from kit.errors import ConfigError, DataError
from kit.metrics import Metric, get_metric

METHODS = ("soft", "hard", "weighted")
RUN_FILES = ("oof.parquet", "test_pred.parquet", "scores.json", "config.toml")


# --- voting on arrays -------------------------------------------------------------------


def _stack(probas: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(M, N, C) float64 from a list of M (N, C) arrays; shapes must agree."""
    shapes = {np.shape(p) for p in probas}
    if len(probas) == 0 or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"expected one or more (N, C) arrays of one shape, got {sorted(shapes)}")
    return np.asarray(probas, dtype=np.float64)


def soft_vote(probas: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of M (N, C) probability arrays; equal weights when none are given.

    >>> soft_vote([np.array([[0.8, 0.2]]), np.array([[0.4, 0.6]])])  # [[0.6, 0.4]]
    """
    stack = _stack(probas)
    w = np.full(len(stack), 1 / len(stack)) if weights is None else np.asarray(weights, float)
    return np.tensordot(w / w.sum(), stack, axes=1)


def hard_vote(probas: Sequence[np.ndarray]) -> np.ndarray:
    """Majority vote of the members' argmax classes, as a one-hot (N, C) float64 array.

    Ties in votes: higher summed probability, then lower class index (module docstring).
    """
    stack = _stack(probas)
    n_classes = stack.shape[2]
    votes = (stack.argmax(2)[..., None] == np.arange(n_classes)).sum(0)  # (N, C) counts
    # Rounded so that float summation order cannot break what is a tie on paper.
    summed = np.round(stack.sum(0), 12)
    tied = votes == votes.max(1, keepdims=True)
    winner = np.where(tied, summed, -np.inf).argmax(1)  # argmax keeps the lowest index
    return np.eye(n_classes)[winner]


def fold_vote_hard(fold_test_probas: list[np.ndarray]) -> np.ndarray:
    """Hard vote of the fold models' test probabilities (config: ensemble.fold_vote = "hard").

    >>> fold_vote_hard([fold0_proba, fold1_proba, fold2_proba])  # (N, C) one-hot
    """
    return hard_vote(fold_test_probas)


# --- weights -----------------------------------------------------------------------------


def fit_weights(probas: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Weights on the simplex minimising the log loss of the weighted blend (see module doc)."""
    stack = _stack(probas)
    labels = np.asarray(labels, dtype=np.int64)
    n_members = len(stack)
    if n_members == 1:
        return np.ones(1)
    # Only each row's true-class probability enters the log loss: (N, M).
    true = np.clip(stack[:, np.arange(stack.shape[1]), labels].T, 1e-15, 1.0)

    def loss(w: np.ndarray) -> float:
        return float(-np.log(np.maximum(true @ w, 1e-15)).mean())

    def grad(w: np.ndarray) -> np.ndarray:
        return -(true / np.maximum(true @ w, 1e-15)[:, None]).mean(0)

    from scipy.optimize import minimize  # here: soft / hard runs skip its ~1 s import

    start = np.full(n_members, 1 / n_members)
    result = minimize(
        loss, start, jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * n_members,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": np.ones_like}],
    )
    w = np.clip(result.x, 0.0, None)
    w[w < 1e-6] = 0.0  # solver dust; a member at 1e-9 is a member left out
    w = w / w.sum() if w.sum() > 0 else start
    return w if loss(w) <= loss(start) else start


def cross_validated_blend(
    probas: Sequence[np.ndarray], labels: np.ndarray, folds: np.ndarray
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """OOF blend where each fold's rows use weights fitted on the other folds only.

    Returns the (N, C) blend and {fold: weights}; score it with the competition metric.
    """
    stack, folds = _stack(probas), np.asarray(folds)
    if len(np.unique(folds)) < 2:
        raise DataError(
            f"cannot cross-validate weights: the OOF rows hold {len(np.unique(folds))} fold(s); "
            "train the members with cv.n_splits >= 2 or give --weights"
        )
    blend = np.empty(stack.shape[1:])
    fold_weights = {}
    for fold in np.unique(folds):
        held = folds == fold
        w = fit_weights(stack[:, ~held], labels[~held])
        blend[held] = soft_vote(stack[:, held], w)
        fold_weights[int(fold)] = w
    return blend, fold_weights


def parse_weights(text: str, n_members: int) -> np.ndarray:
    """'0.3,0.7' -> array([0.3, 0.7]); one non-negative number per run, normalised to sum 1."""
    try:
        w = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ConfigError(
            f"--weights {text!r}: not a comma-separated list of numbers; e.g. --weights 0.3,0.7"
        ) from None
    if len(w) != n_members:
        raise ConfigError(
            f"--weights {text!r} gives {len(w)} weight(s) for {n_members} run folders; "
            "give one weight per run, in the order of the runs"
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"--weights {text!r}: weights must be finite, >= 0, not all zero")
    return w / w.sum()


# --- run folders -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One member: its folder, resolved config, classes and prediction frames sorted by id."""

    path: Path
    cfg: Config
    classes: list[str]
    oof: pd.DataFrame  # index: id as str; columns: id, fold, target, p_<class>...
    test: pd.DataFrame  # index: id as str; columns: id, p_<class>...

    @property
    def columns(self) -> list[str]:
        return [f"p_{c}" for c in self.classes]


@dataclass(frozen=True)
class Stack:
    """Members aligned by id: probabilities (M, N, C) / (M, T, C) plus the shared columns."""

    classes: list[str]
    oof_ids: np.ndarray
    folds: np.ndarray
    targets: np.ndarray  # original labels, as in oof.parquet
    labels: np.ndarray  # class indices into `classes`
    oof: np.ndarray
    test_ids: np.ndarray
    test: np.ndarray

    @property
    def target_classes(self) -> list:
        """`classes` in the targets' own type for the submission: 1.0 (a float), not "1.0"."""
        typed = {str(t): t for t in pd.unique(self.targets)}
        return [typed.get(c, c) for c in self.classes]


def resolve_run_dir(run_dir: str | Path, slug: str, runs_root: Path) -> Path:
    """A path as given, or a folder name under <runs_root>/<slug>/."""
    path = Path(run_dir)
    if not path.is_dir() and (runs_root / slug / path).is_dir():
        return runs_root / slug / path
    if not path.is_dir():
        raise DataError(
            f"run folder not found: {run_dir} (nor {runs_root / slug / path}); pass a folder "
            f"made by scripts/train.py: {runs_root / slug}/<YYYYmmdd-HHMMSS>_<model>_<features>"
        )
    return path


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder through the prediction-file contract; a broken one is a DataError."""
    path = Path(run_dir)
    missing = [name for name in RUN_FILES if not (path / name).exists()]
    if missing:
        raise DataError(
            f"run folder {path} lacks {', '.join(missing)}: it is not a finished run; "
            f"pass a folder holding {', '.join(RUN_FILES)} (finish or rerun its training)"
        )
    cfg = load_resolved(path / "config.toml")
    try:
        classes = [str(c) for c in json.loads((path / "scores.json").read_text())["classes"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path / 'scores.json'}: no readable 'classes' list ({exc!r})") from None
    oof = _read_frame(path / "oof.parquet", ["id", "fold", "target"], classes)
    test = _read_frame(path / "test_pred.parquet", ["id"], classes)
    return Run(path, cfg, classes, oof, test)


def _read_frame(path: Path, keys: list[str], classes: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    wanted = keys + [f"p_{c}" for c in classes]
    lacking = [c for c in wanted if c not in frame.columns]
    if lacking:
        raise DataError(
            f"{path} lacks columns {lacking} (has {list(frame.columns)}); the prediction-file "
            "contract wants id, fold, target (oof only) and p_<class> for each class in "
            "scores.json"
        )
    key = frame["id"].astype(str)
    if key.duplicated().any():
        raise DataError(f"{path}: duplicate ids {key[key.duplicated()].head(5).tolist()}")
    if frame[wanted[len(keys):]].isna().to_numpy().any():
        raise DataError(f"{path}: missing probabilities (NaN); rerun that run's prediction")
    frame = frame.sort_values("id", kind="mergesort")
    return frame.set_axis(frame["id"].astype(str).to_numpy(), axis=0)


def _align(frame: pd.DataFrame, order: pd.Index, what: str, run: Run, ref: Run) -> pd.DataFrame:
    """`frame` reindexed to `order`, or a DataError naming the missing / extra ids."""
    missing, extra = order.difference(frame.index), frame.index.difference(order)
    if len(missing) or len(extra):
        raise DataError(
            f"run {run.path}: its {what} ids differ from those of run {ref.path}: missing "
            f"{len(missing)} id(s) {missing[:5].tolist()}, extra {len(extra)} id(s) "
            f"{extra[:5].tolist()}; ensemble runs trained on the same data and all folds "
            "(a --folds K or --dry-run run covers part of the OOF rows)"
        )
    return frame.loc[order]


def stack_runs(runs: list[Run], slug: str) -> Stack:
    """Check the runs belong together (competition, classes, ids, targets) and align them."""
    ref = runs[0]
    oofs, tests = [], []
    for run in runs:
        if run.cfg.competition.slug != slug:
            raise DataError(
                f"run {run.path} is from competition {run.cfg.competition.slug!r}, not "
                f"{slug!r} (see its config.toml); ensemble runs of one competition only"
            )
        if sorted(run.classes) != sorted(ref.classes):
            raise DataError(
                f"run {run.path} has classes {run.classes}, run {ref.path} has {ref.classes} "
                "(scores.json); ensemble runs predicting the same classes only"
            )
        oof = _align(run.oof, ref.oof.index, "oof.parquet", run, ref)
        if (oof["target"].astype(str) != ref.oof["target"].astype(str)).any():
            bad = oof.index[oof["target"].astype(str) != ref.oof["target"].astype(str)]
            raise DataError(
                f"run {run.path}: oof targets differ from run {ref.path} for ids "
                f"{bad[:5].tolist()}; the runs saw different training data"
            )
        oofs.append(oof[ref.columns].to_numpy(np.float64))
        tests.append(_align(run.test, ref.test.index, "test_pred.parquet", run, ref)[ref.columns])
    index = {c: i for i, c in enumerate(ref.classes)}
    targets = ref.oof["target"].to_numpy()
    labels = ref.oof["target"].astype(str).map(index).to_numpy()  # NaN: not a class
    unknown = pd.isna(labels)
    if unknown.any():
        raise DataError(
            f"{ref.path / 'oof.parquet'}: targets {sorted(set(targets[unknown].astype(str)))[:5]}"
            f" are not among the classes {ref.classes} of scores.json"
        )
    labels = labels.astype(np.int64)
    return Stack(
        classes=ref.classes, oof_ids=ref.oof["id"].to_numpy(),
        folds=ref.oof["fold"].to_numpy(np.int64), targets=targets, labels=labels,
        oof=np.stack(oofs), test_ids=ref.test["id"].to_numpy(),
        test=np.stack([t.to_numpy(np.float64) for t in tests]),
    )


# --- the ensemble run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Blend:
    """What a method made of a Stack: predictions, weights and the ensemble's OOF scores."""

    method: str
    weights: np.ndarray
    weights_source: str  # "equal", "given" or "fitted"
    oof: np.ndarray  # (N, C); for fitted weights the cross-validated blend
    test: np.ndarray  # (T, C)
    score_in_sample: float
    score_cv: float | None  # only when weights were fitted on the same OOF rows
    fold_weights: dict[int, np.ndarray]

    @property
    def score(self) -> float:
        """The score to report: cross-validated when weights were fitted, else in-sample."""
        return self.score_in_sample if self.score_cv is None else self.score_cv


def blend(stack: Stack, method: str, metric: Metric, weights: np.ndarray | None = None) -> Blend:
    """Apply `method` to aligned members; weighted without `weights` fits them on OOF."""
    n_members, labels = len(stack.oof), stack.labels
    equal = np.full(n_members, 1 / n_members)
    if method == "hard":
        oof, test = hard_vote(stack.oof), hard_vote(stack.test)
        return Blend(method, equal, "equal", oof, test, metric(labels, oof), None, {})
    if method == "soft" or weights is not None:
        w = equal if weights is None else np.asarray(weights, float)
        oof = soft_vote(stack.oof, w)
        source, test = ("equal" if weights is None else "given"), soft_vote(stack.test, w)
        return Blend(method, w, source, oof, test, metric(labels, oof), None, {})
    w = fit_weights(stack.oof, labels)
    in_sample = metric(labels, soft_vote(stack.oof, w))
    cv_oof, fold_weights = cross_validated_blend(stack.oof, labels, stack.folds)
    test = soft_vote(stack.test, w)
    return Blend(method, w, "fitted", cv_oof, test, in_sample, metric(labels, cv_oof), fold_weights)


def ensemble_runs(
    slug: str,
    run_dirs: Sequence[str | Path],
    *,
    method: str = "soft",
    weights: str | None = None,
    runs_root: str | Path | None = None,
    submissions_root: str | Path | None = None,
    data_dir: str | Path | None = None,
    log=print,
) -> dict:
    """Combine run folders into a new run folder plus a submission; returns the summary.

    >>> ensemble_runs("titanic", ["runs/titanic/A_mlp_raw", "runs/titanic/B_gbdt_raw"],
    ...               method="weighted")["oof_score"]
    """
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if weights is not None and method != "weighted":
        raise ConfigError(f"--weights applies to --method weighted, not {method!r}; add it")
    if len(run_dirs) < 2:
        raise ConfigError(f"an ensemble needs at least two run folders, got {len(run_dirs)}")
    runs_root = Path(runs_root) if runs_root is not None else paths.runs_root()
    runs = [load_run(resolve_run_dir(d, slug, runs_root)) for d in run_dirs]
    stack = stack_runs(runs, slug)
    cfg = runs[0].cfg
    metric = get_metric(cfg.competition.metric)
    sample = sample_path(cfg, slug, data_dir)
    log(f"{len(runs)} runs aligned: {len(stack.oof_ids)} OOF rows, {len(stack.test_ids)} test "
        f"rows, classes {stack.classes}, metric {metric.name} ({metric.mode})")
    if method == "hard" and (metric.name in ("logloss", "auc") or cfg.submission.kind == "proba"):
        warnings.warn(
            f"hard voting outputs one-hot votes, not probabilities, but the metric is "
            f"{metric.name!r} and submission.kind is {cfg.submission.kind!r}; --method soft "
            "or weighted suits these better",
            stacklevel=2,
        )
    parsed = parse_weights(weights, len(runs)) if weights is not None else None
    result = blend(stack, method, metric, parsed)
    subs_root = Path(submissions_root) if submissions_root is not None else paths.submissions_root()
    return write_ensemble_run(
        runs, stack, result, metric, sample_path=sample,
        run_dir=new_run_dir(runs_root / slug, method), submissions_dir=subs_root / slug,
    )
