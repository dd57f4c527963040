"""Text columns for trees: TruncatedSVD components vs an OOF linear prediction (kit/data/text.py).

Both are fitted per outer fold on its training rows; the OOF linear prediction gives those
rows theirs by an inner 5-fold (as kit/tasks/tabular/fold_features.py does for target encoding). Scored
by 5-fold CV (AUC, accuracy) on a synthetic review table (numbers, a category and a text
whose words and misspellings carry part of the signal) and on the Titanic demo's Name.

    .venv/bin/python scripts/bench_text.py [--rows 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.data.text import TextFeatures  # noqa: E402

POSITIVE = ["excellent", "sturdy", "reliable", "gorgeous", "recommend", "perfect"]
NEGATIVE = ["broken", "refund", "flimsy", "disappointed", "useless", "leaking"]


def review_table(n: int, seed: int) -> pd.DataFrame:
    """Numbers x0..x3, a category, and a review of 8-20 words: filler, plus signal words
    (sometimes misspelled: a char n-gram still finds them); y depends on both."""
    rng = np.random.default_rng(seed)
    filler = [f"{a}{b}" for a in ("bo", "ka", "mi", "tu", "ze", "ro") for b in
              ("x", "lan", "rit", "po", "dem", "qua", "vel", "sin", "gor", "pa")]
    x = rng.normal(size=(n, 4))
    cat = rng.choice(list("abcde"), n)
    score = np.zeros(n)
    texts = []
    for i in range(n):
        words = list(rng.choice(filler, rng.integers(8, 21)))
        for _ in range(rng.poisson(1.5)):
            good = rng.random() < 0.5
            word = rng.choice(POSITIVE if good else NEGATIVE)
            if rng.random() < 0.3:  # a typo: one letter dropped
                k = rng.integers(1, len(word) - 1)
                word = word[:k] + word[k + 1:]
            words.insert(rng.integers(0, len(words) + 1), word)
            score[i] += 0.9 if good else -0.9
        texts.append(" ".join(words))
    logit = 0.8 * x[:, 0] - 0.6 * x[:, 1] + 0.4 * (cat == "a") + score
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "x3": x[:, 3],
                         "cat": pd.Categorical(cat).codes, "text": texts, "y": y})


def titanic_table() -> pd.DataFrame:
    import tempfile

    from kit.hooks import load_hook

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        load_hook(root / "competitions" / "titanic", "demo", "make_demo")(Path(tmp), seed=0)
        frame = pd.read_csv(Path(tmp) / "train.csv")
    return pd.DataFrame({"x0": frame["Pclass"], "x1": frame["Age"].fillna(-1),
                         "x2": frame["SibSp"] + frame["Parch"], "x3": frame["Fare"],
                         "cat": (frame["Sex"] == "female").astype(int), "text": frame["Name"],
                         "y": frame["Survived"]})


def oof_linear(fit: pd.DataFrame, frame: pd.DataFrame, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    text = TextFeatures(["text"], seed=seed).fit(fit)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(text.transform(fit), fit["y"])
    return model.predict_proba(text.transform(frame))[:, 1]


def compact(form: str, fit: pd.DataFrame, parts: list[pd.DataFrame], seed: int) -> list:
    """The text's compact columns for `fit` (inner K-fold for the OOF form) and `parts`."""
    from sklearn.model_selection import KFold

    if form == "none":
        return [np.zeros((len(fit), 0)), *[np.zeros((len(p), 0)) for p in parts]]
    if form.startswith("svd"):
        text = TextFeatures(["text"], n_components=int(form[3:]), seed=seed).fit(fit, compact=True)
        return [text.compact(f).to_numpy() for f in (fit, *parts)]
    inner = np.zeros(len(fit))
    for a, b in KFold(5, shuffle=True, random_state=seed).split(fit):
        inner[b] = oof_linear(fit.iloc[a], fit.iloc[b], seed)
    return [inner[:, None], *[oof_linear(fit, p, seed)[:, None] for p in parts]]


def cv(frame: pd.DataFrame, model: str, form: str, seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    dense = ["x0", "x1", "x2", "x3", "cat"]
    oof, started = np.zeros(len(frame)), time.perf_counter()
    for tr, va in StratifiedKFold(5, shuffle=True, random_state=seed).split(frame, frame["y"]):
        fit, valid = frame.iloc[tr], frame.iloc[va]
        if model == "linear":
            mu, sd = fit[dense].mean(), fit[dense].std()
            parts = [sparse.csr_matrix(((f[dense] - mu) / sd).to_numpy()) for f in (fit, valid)]
            if form == "tfidf":
                text = TextFeatures(["text"], seed=seed).fit(fit)
                parts = [sparse.hstack([p, text.transform(f)]).tocsr()
                         for p, f in zip(parts, (fit, valid), strict=True)]
            clf = LogisticRegression(C=1.0, max_iter=3000).fit(parts[0], fit["y"])
            oof[va] = clf.predict_proba(parts[1])[:, 1]
            continue
        extra_fit, extra_valid = compact(form, fit, [valid], seed)
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
        clf.fit(np.hstack([fit[dense].to_numpy(), extra_fit]), fit["y"])
        oof[va] = clf.predict_proba(np.hstack([valid[dense].to_numpy(), extra_valid]))[:, 1]
    return {"auc": round(roc_auc_score(frame["y"], oof), 4),
            "accuracy": round(accuracy_score(frame["y"], oof > 0.5), 4),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    for name, frame in (("reviews", review_table(args.rows, args.seed)),
                        ("titanic_demo_name", titanic_table())):
        for model, form in (("linear", "none"), ("linear", "tfidf"), ("gbdt", "none"),
                            ("gbdt", "svd16"), ("gbdt", "svd32"), ("gbdt", "svd64"),
                            ("gbdt", "oof_linear")):
            results[f"{name}/{model}/{form}"] = row = cv(frame, model, form, args.seed)
            print(f"{name:18s} {model:7s} {form:11s} {row}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
