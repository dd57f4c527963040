"""Text columns (`features.text`): a TF-IDF per fold, and the compact form trees and networks read.

Each text column gets two scikit-learn TfidfVectorizers, word 1-2-grams and character
2-4-grams inside word boundaries (`char_wb`: misspellings and word pieces), fitted on the
fold's training rows only, so no validation or test word enters the vocabulary.

- `linear` (kit/models/tabular.py) reads the sparse TF-IDF beside its own columns:
  `TextJoined` feeds the fitted one-hot / passthrough step's output and the TF-IDF block
  to the final estimator, one model for both.
- trees (gbdt, rf, extratrees, lgbm, xgb, catboost), networks (mlp, tabm) and `blend` read
  `svd_<column>_<k>`: TruncatedSVD components of the same TF-IDF, fitted on the same rows
  (docs/training.md, Text columns: measured against an OOF linear prediction of the text,
  which a fold feature's inner K-fold would give).

The fitted state is one skops file per fold (`text.skops`; no pickle: SKOPS_TRUSTED below
names every type it may hold), so predict.py transforms the test rows exactly as training did.

    text = TextFeatures(["title"], n_components=32, seed=0).fit(train_frame)
    x = text.transform(test_frame)          # scipy CSR, word + char columns of each column
    svd = text.compact(test_frame)          # DataFrame svd_title_0 .. svd_title_31
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from kit.errors import CheckpointError, DataError
from kit.io import atomic_path

FILE = "text.skops"
SPARSE_MODELS = ("linear",)  # the kinds that read the TF-IDF itself; the rest its SVD
N_COMPONENTS = 32  # per text column (docs/training.md, Text columns: 16 / 32 / 64 measured)
# word unigrams and bigrams; character 2-4-grams: min_df = 2 drops n-grams one row holds
# (they cannot generalize) and keeps the vocabulary to what the fold's rows share
WORD = {"analyzer": "word", "ngram_range": (1, 2), "min_df": 2, "max_features": 50_000,
        "sublinear_tf": True, "dtype": np.float32}
CHAR = {"analyzer": "char_wb", "ngram_range": (2, 4), "min_df": 2, "max_features": 50_000,
        "sublinear_tf": True, "dtype": np.float32}

# the kit's own types in text.skops and a linear model.skops with text: skops trusts the
# scikit-learn estimators and numpy types these hold by default; anything else is refused
SKOPS_TRUSTED = ["kit.data.text.TextFeatures", "kit.data.text.TextJoined"]


def as_text(values: pd.Series) -> pd.Series:
    """Strings for the vectorizer: a missing value is the empty text, not "nan"."""
    return values.astype("string").fillna("").astype(str)


class TextFeatures:
    """The fitted vectorizers of a fold's text columns, and their SVD (the compact form)."""

    def __init__(self, columns: list[str], *, n_components: int = 32, seed: int = 0):
        self.columns, self.n_components, self.seed = list(columns), n_components, seed
        self.vectorizers: list = []
        self.svds: list = []

    def fit(self, frame: pd.DataFrame, *, compact: bool = False) -> TextFeatures:
        """Fit on `frame` (the fold's training rows); with `compact`, the SVD as well."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizers, self.svds = [], []
        for column in self.columns:
            texts = as_text(frame[column])
            fitted = [_fit_or_empty(TfidfVectorizer(**WORD), texts),
                      _fit_or_empty(TfidfVectorizer(**CHAR), texts)]
            self.vectorizers.append([v for v, _ in fitted])
            if compact:  # the SVD on the matrices the fit made: the rows tokenized once
                self.svds.append(self._fit_svd(sparse.hstack(
                    [x for v, x in fitted if v is not None]).tocsr()))
        return self

    def _fit_svd(self, x: sparse.csr_matrix):
        from sklearn.decomposition import TruncatedSVD

        # at most one component fewer than the block's columns (TruncatedSVD's limit)
        k = max(1, min(self.n_components, x.shape[1] - 1, x.shape[0] - 1))
        return TruncatedSVD(k, algorithm="randomized", random_state=self.seed).fit(x)

    def blocks(self, frame: pd.DataFrame) -> list[sparse.csr_matrix]:
        """One sparse block per text column: its word and char TF-IDF side by side."""
        out = []
        for column, pair in zip(self.columns, self.vectorizers, strict=True):
            texts = as_text(frame[column])
            parts = [v.transform(texts) for v in pair if v is not None]
            out.append(sparse.hstack(parts).tocsr() if parts else
                       sparse.csr_matrix((len(frame), 0), dtype=np.float32))
        return out

    def transform(self, frame: pd.DataFrame) -> sparse.csr_matrix:
        """The TF-IDF of every text column, one CSR matrix (float32)."""
        return sparse.hstack(self.blocks(frame), format="csr", dtype=np.float32)

    def compact(self, frame: pd.DataFrame) -> pd.DataFrame:
        """svd_<column>_<k> for `frame`'s rows (its index), float32."""
        parts = {}
        for column, block, svd in zip(self.columns, self.blocks(frame), self.svds, strict=True):
            values = svd.transform(block) if block.shape[1] > 1 else np.zeros((len(frame), 1))
            for k in range(values.shape[1]):
                parts[f"svd_{column}_{k}"] = values[:, k].astype(np.float32)
        return pd.DataFrame(parts, index=frame.index)

    def vocabulary(self) -> set[str]:
        """Every word and character n-gram the fold's vectorizers know (tests, reports)."""
        return {term for pair in self.vectorizers for v in pair if v is not None
                for term in v.vocabulary_}


def _fit_or_empty(vectorizer, texts: pd.Series) -> tuple:
    """(the fitted vectorizer, its TF-IDF of `texts`), or (None, None) when the rows share no
    n-gram (min_df): a column of blanks in a small fold is not an error, it adds no feature."""
    try:
        return vectorizer, vectorizer.fit_transform(texts)
    except ValueError:  # "empty vocabulary" / "After pruning, no terms remain"
        return None, None


class TextJoined:
    """A scikit-learn Pipeline (transform steps, then a linear estimator) whose estimator also
    reads a sparse TF-IDF block: X is CSR [dense columns | TF-IDF], the first `n_dense`
    columns go through the pipeline's steps (the one-hot of kit/models/tabular.py's linear
    kind, which takes dense input only) and the rest joins their output. One fitted model."""

    def __init__(self, pipeline, n_dense: int):
        self.pipeline, self.n_dense = pipeline, n_dense

    def _join(self, x: sparse.csr_matrix, fit: bool) -> sparse.csr_matrix:
        dense = x[:, :self.n_dense].toarray()
        steps = self.pipeline[:-1]
        head = steps.fit_transform(dense) if fit else steps.transform(dense)
        return sparse.hstack([sparse.csr_matrix(head), x[:, self.n_dense:]], format="csr")

    def fit(self, x: sparse.csr_matrix, y, sample_weight=None) -> TextJoined:
        weights = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.pipeline[-1].fit(self._join(x, fit=True), y, **weights)
        return self

    def predict(self, x: sparse.csr_matrix) -> np.ndarray:
        return self.pipeline[-1].predict(self._join(x, fit=False))

    def predict_proba(self, x: sparse.csr_matrix) -> np.ndarray:
        return self.pipeline[-1].predict_proba(self._join(x, fit=False))


def save_text(path: Path, text: TextFeatures) -> None:
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(text, tmp)


def load_text(path: Path) -> TextFeatures:
    """The fold's fitted vectorizers; refuses any type outside SKOPS_TRUSTED."""
    import skops.io as sio

    if not path.is_file():
        raise CheckpointError(f"{path} is missing: features.text was fitted per fold and saved "
                              "there; copy the run folder whole, or train again")
    untrusted = set(sio.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED)
    if untrusted:
        raise CheckpointError(f"{path} holds types the kit does not load: {sorted(untrusted)}")
    return sio.load(path, trusted=SKOPS_TRUSTED)


def check_text_columns(columns: list[str], train: pd.DataFrame, where: str) -> None:
    """A text column holds words: a numeric one is refused (it belongs in features.numeric)."""
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(train[c])
               or pd.api.types.is_bool_dtype(train[c])]
    if numeric:
        raise DataError(f"{where}: features.text lists {numeric}, which hold numbers, not text; "
                        "move them to features.numeric (or features.categorical) in config.toml")


def fit_fold_text(columns: list[str], tables, rows: np.ndarray, fold_dir: Path, cache: Path,
                  *, model: str, seed: int):
    """(tables, fitted TextFeatures or None): the vectorizers fitted on the fold's training
    `rows` and saved in `fold_dir`; for a kind that reads the compact form, the tables with
    its svd_* columns joined as numeric ones (kit/tasks/tabular/tables.py Tables; parquet copies
    under the fold's `cache`)."""
    if not columns:
        return tables, None
    compact = model not in SPARSE_MODELS
    text = TextFeatures(columns, n_components=N_COMPONENTS, seed=seed).fit(
        tables.train.iloc[rows], compact=compact)
    save_text(fold_dir / FILE, text)
    return (join_compact(tables, text, cache) if compact else tables), text


def load_fold_text(columns: list[str], tables, fold_dir: Path, cache: Path):
    """fit_fold_text's result for prediction: the saved vectorizers, never fitted again."""
    if not columns:
        return tables, None
    text = load_text(fold_dir / FILE)
    return (join_compact(tables, text, cache) if text.svds else tables), text


def join_compact(tables, text: TextFeatures, cache: Path):
    """`tables` with svd_<column>_<k> as numeric columns; their parquet copies, when a
    stream asks for them, go to `cache`/text (Tables.parquet)."""
    train_cols, test_cols = text.compact(tables.train), text.compact(tables.test)
    clash = [c for c in train_cols.columns if c in tables.train.columns]
    if clash:
        raise DataError(f"features.text adds {clash[:3]}, which already exist as columns; "
                        "rename those columns in features.py")
    train, test = tables.train.join(train_cols), tables.test.join(test_cols)
    return dataclasses.replace(tables, train=train, test=test, cache=cache / "text",
                               numeric=[*tables.numeric, *train_cols.columns])


def with_tfidf(x: np.ndarray, text: TextFeatures | None, frame: pd.DataFrame):
    """The dense columns `x` of `frame`'s rows, and its TF-IDF beside them (CSR) when the
    model reads it (TextJoined); `x` as it is otherwise."""
    if text is None or text.svds:
        return x
    return sparse.hstack([sparse.csr_matrix(x), text.transform(frame)], format="csr")
