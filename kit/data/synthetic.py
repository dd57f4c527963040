"""A seeded synthetic table with a known signal: the kit's shared tabular yardstick.

    frame = make_table(1_000_000, seed=0)       # id, num_00..num_29, cat_0..cat_9, target
    train, test = split_table(frame, test_fraction=0.2, seed=0)
    write_competition(Path("data/synthetic-tabular"), 1_000_000, seed=0)  # + its config

The recipe is fixed here. scripts/bench_tabular_models.py and its table in docs/benchmarks.md
(Tabular model kinds) are measured on it, so changing any number below changes every figure
measured on it: bump RECIPE then, and re-measure what cites it.

Recipe (RECIPE = "v1"), n rows, one numpy Generator seeded with `seed`:

- the world first (fixed-size draws, so every n shares it for a seed): a per-level effect
  for each categorical, N(0, CAT_EFFECT_SD[j]), zero for cat_1, cat_3 and cat_5;
- numerics, float32: num_00..num_28 standard normal, except num_01 = 0.6 num_00 + 0.8 e
  (correlated, unit variance), num_20 = exp(N(0, 1)) and num_21 = exp(1.5 N(0, 1))
  (lognormal, skewed), num_29 uniform on [0, 1); 5% of num_03, num_07, num_12, num_20 and
  num_25 missing (NaN) at random, and num_07's missingness itself carries signal;
- categoricals cat_0..cat_9 with CARDINALITIES levels, level k drawn with probability
  proportional to 1 / (k + 1) ** ZIPF (level 0 the most common), written "<letter><k>"
  with letter a..j for cat_0..cat_9, e.g. "h17";
- the log-odds, INTERCEPT plus:
    linear       0.8 num_00 - 0.6 num_01 + 0.5 num_02 + 0.4 num_03 + 0.3 num_12
    interaction  1.2 num_05 num_06
    steps        1.2 [num_08 > 0.5] - 1.0 [num_09 < -1] + 0.7 [num_21 > 3]
    curves       1.2 sin(2 num_10) - 0.6 (num_11^2 - 1) + 0.6 log(num_20)
    missingness  0.6 [num_07 is NaN]
    cat x num    slope[cat_1] num_04, slopes -1, -0.5, 0, 0.5, 1
    per level    effect_j[cat_j] for j in 0, 2, 4, 6, 7, 8, 9 (the last three have 500,
                 1000 and 5000 levels, mostly rare)
  the terms see the values before they are made missing (a NaN hides its signal);
- target ~ Bernoulli(sigmoid(log-odds)): logistic noise, so the Bayes AUC is ~0.90, not 1.

Pure noise: num_13..num_19, num_22..num_29, cat_3, cat_5. Positive rate ~0.40.
Measured (held-out AUC, 200k rows, 80/20): the true log-odds 0.899, scikit-learn's
HistGradientBoosting (<= 300 trees at 0.1) 0.845, LogisticRegression on one-hot +
numerics 0.764, on the numerics alone 0.695. make_table(N)'s first n rows are not
make_table(n).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import ConfigError, KitError
from kit.io import atomic_path, write_text
from kit.paths import ROOT, competitions_root

RECIPE = "v1"  # bump when anything below changes what make_table returns
SLUG = "synthetic-tabular"  # the competition folder write_competition sets up
N_NUMERIC = 30
CARDINALITIES = (3, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)  # cat_0 .. cat_9
CAT_EFFECT_SD = (0.8, 0.0, 0.5, 0.0, 0.5, 0.0, 0.6, 0.6, 0.6, 0.6)  # log-odds per level
ZIPF = 1.1  # level frequencies fall as 1 / (k + 1) ** ZIPF
MISSING = (3, 7, 12, 20, 25)  # numerics with 5% NaN
MISSING_RATE = 0.05
INTERCEPT = -1.0  # log-odds; sets the positive rate to ~0.40


def make_table(n_rows: int, seed: int = 0, *, logit: bool = False) -> pd.DataFrame:
    """The synthetic table: `id`, num_00..num_29, cat_0..cat_9, `target` (0/1).

    Same (n_rows, seed), same frame. `logit=True` adds the true log-odds as `logit` (the
    Bayes-optimal score: its AUC is the ceiling for any model on these rows).

    >>> make_table(1000, seed=0).shape
    (1000, 42)
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        raise ConfigError(f"n_rows={n_rows!r}: give the number of rows, an integer >= 1")
    rng = np.random.default_rng(seed)
    return _rows(rng, _world(rng), n_rows, 0, logit)


def table_chunks(n_rows: int, chunk_rows: int, seed: int = 0) -> Iterator[pd.DataFrame]:
    """The same recipe in chunks of `chunk_rows` (ids 0..n_rows-1 in order), for tables
    too big to make whole: one world (the level effects) and one generator run on through
    the chunks, so the chunks are one table, though not make_table(n_rows)'s rows."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1 or chunk_rows < 1:
        raise ConfigError(f"n_rows={n_rows!r}, chunk_rows={chunk_rows!r}: give integers >= 1")
    rng = np.random.default_rng(seed)
    world = _world(rng)
    for start in range(0, n_rows, chunk_rows):
        yield _rows(rng, world, min(chunk_rows, n_rows - start), start)


def _world(rng: np.random.Generator) -> list[np.ndarray]:
    """Each categorical level's effect on the log-odds (drawn first: fixed-size draws)."""
    return [rng.normal(0.0, sd, card) for sd, card in zip(CAT_EFFECT_SD, CARDINALITIES)]


def _rows(rng: np.random.Generator, effects: list[np.ndarray], n_rows: int, first_id: int,
          logit: bool = False) -> pd.DataFrame:
    x = _numerics(rng, n_rows)
    codes = [_zipf_codes(rng, card, n_rows) for card in CARDINALITIES]
    missing = rng.random((n_rows, len(MISSING)), dtype=np.float32) < MISSING_RATE
    log_odds = INTERCEPT + _numeric_terms(x, missing[:, MISSING.index(7)])
    log_odds += np.linspace(-1.0, 1.0, CARDINALITIES[1])[codes[1]] * x[:, 4]
    for effect, code in zip(effects, codes):
        log_odds += effect[code]
    target = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-log_odds))
    for k, column in enumerate(MISSING):
        x[missing[:, k], column] = np.nan
    frame = pd.DataFrame(x, columns=[f"num_{i:02d}" for i in range(N_NUMERIC)])
    frame.insert(0, "id", np.arange(first_id, first_id + n_rows, dtype=np.int64))
    for j, code in enumerate(codes):
        frame[f"cat_{j}"] = np.array([f"{'abcdefghij'[j]}{k}" for k in range(CARDINALITIES[j])],
                                     dtype=object)[code]
    frame["target"] = target.astype(np.int64)
    if logit:
        frame["logit"] = log_odds
    return frame


def _numerics(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, N_NUMERIC), dtype=np.float32)
    x[:, 1] = 0.6 * x[:, 0] + 0.8 * x[:, 1]
    x[:, 20] = np.exp(x[:, 20])
    x[:, 21] = np.exp(1.5 * x[:, 21])
    x[:, 29] = rng.random(n, dtype=np.float32)
    return x


def _zipf_codes(rng: np.random.Generator, cardinality: int, n: int) -> np.ndarray:
    p = 1.0 / np.arange(1, cardinality + 1) ** ZIPF
    return rng.choice(cardinality, n, p=p / p.sum()).astype(np.int32)


def _numeric_terms(x: np.ndarray, num_07_missing: np.ndarray) -> np.ndarray:
    """The numeric part of the log-odds (float64), as listed in the module docstring."""
    x = x.astype(np.float64)
    return (0.8 * x[:, 0] - 0.6 * x[:, 1] + 0.5 * x[:, 2] + 0.4 * x[:, 3] + 0.3 * x[:, 12]
            + 1.2 * x[:, 5] * x[:, 6]
            + 1.2 * (x[:, 8] > 0.5) - 1.0 * (x[:, 9] < -1.0) + 0.7 * (x[:, 21] > 3.0)
            + 1.2 * np.sin(2.0 * x[:, 10]) - 0.6 * (x[:, 11] ** 2 - 1.0) + 0.6 * np.log(x[:, 20])
            + 0.6 * num_07_missing)


def split_table(frame: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows shuffled with `seed`, then cut: (train, test), each with a fresh 0..n-1 index."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction!r}: give a fraction in (0, 1), "
                          "e.g. 0.2")
    order = np.random.default_rng(seed).permutation(len(frame))
    n_test = int(round(test_fraction * len(frame)))
    if n_test == 0 or n_test == len(frame):
        raise ConfigError(f"test_fraction={test_fraction} of {len(frame)} rows leaves an "
                          "empty part; give more rows")
    part = lambda rows: frame.iloc[np.sort(rows)].reset_index(drop=True)
    return part(order[n_test:]), part(order[:n_test])


def write_competition(folder: Path, n_rows: int, seed: int = 0, *, test_fraction: float = 0.2,
                      slug: str = SLUG, competitions: Path | None = None) -> Path:
    """Write train.csv, test.csv (no target) and sample_submission.csv into `folder`, and
    set up competitions/<slug>/ as a new user would; return the competition folder.

    `n_rows` counts train and test rows together. The competition comes from
    scripts/new_competition.py (the template), then its EDIT lines are set: metric auc,
    submission.kind proba; id, target and "auto" columns are the template's own.
    `competitions` redirects the competitions root (default: KIT_COMPETITIONS_ROOT or
    competitions/).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> folder = write_competition(root / "data", 1_000, competitions=root / "competitions")
    >>> folder.name, sorted(p.name for p in (root / "data").iterdir())
    ('synthetic-tabular', ['sample_submission.csv', 'test.csv', 'train.csv'])
    """
    train, test = split_table(make_table(n_rows, seed), test_fraction, seed)
    folder = Path(folder)
    _write_csv(folder / "train.csv", train)
    _write_csv(folder / "test.csv", test.drop(columns="target"))
    # 0.5, not 0: the sample's dtype is the submission's, and a probability cast to an
    # integer column would be truncated to 0
    _write_csv(folder / "sample_submission.csv", pd.DataFrame({"id": test["id"], "target": 0.5}))
    return new_competition(slug, competitions or competitions_root(), n_rows, seed)


def _write_csv(dest: Path, frame: pd.DataFrame) -> None:
    # pyarrow writes CSV several times faster than pandas (1M rows: ~3 s against ~20 s)
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with atomic_path(dest) as tmp:
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp,
                        pacsv.WriteOptions(quoting_style="none"))


# The template lines write_competition sets: (pattern, replacement); each must match once.
EDITS = ((r'^metric = "[^"]*"', 'metric = "auc"'),
         (r"^kaggle = true", "kaggle = false"),
         (r'^description = "[^"]*"', 'description = "{description}"'),
         (r'^kind = "auto"', 'kind = "proba"'))


def new_competition(slug: str, root: Path, n_rows: int, seed: int) -> Path:
    """scripts/new_competition.py SLUG --task tabular, then the EDIT lines (EDITS)."""
    env = {**os.environ, "KIT_COMPETITIONS_ROOT": str(root)}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "new_competition.py"), slug,
                           "--task", "tabular", "--force"],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise KitError(f"scripts/new_competition.py {slug} failed: {proc.stderr.strip()}")
    path = root / slug / "config.toml"
    text = path.read_text(encoding="utf-8")
    description = (f"kit.data.synthetic recipe {RECIPE}: make_table({n_rows}, seed={seed}), "
                   "binary target")
    for pattern, line in EDITS:
        text, n = re.subn(pattern, line.format(description=description), text, count=1,
                          flags=re.MULTILINE)
        if n != 1:
            raise KitError(f"{path}: no line matching {pattern!r} in templates/tabular/"
                           "config.toml; update kit/data/synthetic.py's EDITS to the template")
    write_text(path, text)
    return path.parent
