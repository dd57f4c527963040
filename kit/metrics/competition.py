"""A competition's own metric, and `resolve_metric(cfg)`: the one lookup of a run's metric,
built-in or the competition's.

    # competitions/<slug>/metric.py  (copy templates/metric.py)
    NAME = "weighted_map3"  # what competition.metric names
    MODE = "max"            # "max": higher is better, "min": lower is better
    SCORES = "ranked"       # labels, probabilities, ranked or values
    K = 3                   # ranked only: how many guesses a row holds

    def score(labels, pred):  # -> float
        ...

`score` gets the targets (class indices into the run's `classes`, or a regression's values)
and the predictions in the form SCORES names: labels (N,) predicted class indices,
probabilities (N, C), ranked (N, K) class indices best first (ties to the lower index, as
the submission writes them), values (N,). The kit keeps the rest: fold and OOF scores, a
network's early stopping, the direction in scores.json, ensembles, tuning, the submission's
form. A metric file is found by the slug alone (kit.paths), so a run folder's config, an
ensemble of its runs and a kernel (which packs the competition folder) all see the same file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from kit.errors import ConfigError
from kit.hooks import load_hook
from kit.metrics.registry import METRICS, RANKED, SCORES, Metric, check_problem, get_metric, top_k
from kit.paths import check_slug, competitions_root

FILE = "metric.py"
MODES = ("max", "min")


def resolve_metric(cfg) -> Metric:
    """The metric a run with config `cfg` scores: the competition's metric.py when its NAME
    is competition.metric, else the built-in of that name (checked against the problem kind).

    >>> from kit.config import load_config
    >>> from kit.paths import ROOT
    >>> metric = resolve_metric(load_config(ROOT / "competitions/titanic/config.toml"))
    >>> metric.name, metric.mode
    ('accuracy', 'max')
    """
    comp = cfg.competition
    return find_metric(comp.metric, comp.problem, comp.slug)


def find_metric(name: str, problem: str | None, slug: str) -> Metric:
    """`name` among the built-ins and competition `slug`'s metric.py."""
    own = competition_metric(slug)
    if own is not None and own.name == name:
        return check_problem(own, problem)
    if own is not None and name not in METRICS and not RANKED.fullmatch(str(name)):
        raise ConfigError(f"competition.metric = {name!r} is neither a built-in nor the "
                          f"metric {own.name!r} that {own.source} defines (NAME); set "
                          f"competition.metric = \"{own.name}\", or rename NAME there")
    return get_metric(name, problem)


def competition_metric(slug: str) -> Metric | None:
    """The metric competitions/<slug>/metric.py defines, None when there is no such file."""
    folder = competitions_root() / check_slug(slug)
    path = folder / FILE
    if not path.is_file():
        return None
    name = _name(_attr(folder, "NAME"), path)
    mode = _mode(_attr(folder, "MODE"), path)
    scores = _scores(_attr(folder, "SCORES"), path)
    k = _k(_attr(folder, "K"), path) if scores == "ranked" else 0
    fn = _attr(folder, "score")
    if not callable(fn):
        raise ConfigError(f"{path} defines no function score(labels, pred); add one that "
                          "returns the score as a float (templates/metric.py)")
    return Metric(name, _adapt(fn, scores, k), mode, scores, k, source=str(path),
                  weighted=_takes_weight(fn))


def _attr(folder: Path, name: str):
    return load_hook(folder, FILE.removesuffix(".py"), name)


def _name(value, path: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path} defines no NAME (got {value!r}); add NAME = \"<name>\" and "
                          "set competition.metric to the same name")
    if value in METRICS or RANKED.fullmatch(value):
        raise ConfigError(f"{path}: NAME = {value!r} is a built-in metric's name; give yours "
                          "another (e.g. \"my_" + value + "\"), or delete the file to use the "
                          "built-in")
    return value


def _mode(value, path: Path) -> str:
    if value is None:
        raise ConfigError(f"{path} defines no MODE, so the kit cannot tell a better score; "
                          "add MODE = \"max\" (higher is better) or MODE = \"min\" (lower is "
                          "better)")
    if value not in MODES:
        raise ConfigError(f"{path}: MODE = {value!r}; use \"max\" (higher is better) or "
                          "\"min\" (lower is better)")
    return value


def _scores(value, path: Path) -> str:
    if value not in SCORES:
        raise ConfigError(f"{path}: SCORES = {value!r}; say what score() is given: one of "
                          f"{', '.join(SCORES)} (e.g. SCORES = \"labels\")")
    return value


def _k(value, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: K = {value!r}; SCORES = \"ranked\" needs K, the number of "
                          "guesses per row (an integer >= 1, e.g. K = 3)")
    return value


def _takes_weight(fn: Callable) -> bool:
    """Whether score() has a `weight` parameter (per-row weights under data.weight)."""
    try:
        return "weight" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _adapt(fn: Callable, scores: str, k: int) -> Callable[..., float]:
    """The kit's (labels, probabilities-or-values[, weight]) call, turned into the form
    `scores` names; `weight` goes on only when data.weight gave one."""
    form = {"labels": lambda proba: proba.argmax(1),
            "ranked": lambda proba: top_k(proba, k)}.get(scores, lambda proba: proba)

    def score(labels, proba, *weight):
        return fn(labels, form(proba), *weight)

    return score
