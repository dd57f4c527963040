"""Benchmark: the kit's tabular model kinds, each through scripts/train.py, on three datasets.

    python scripts/bench_tabular_models.py --summary-json runs/bench_tabular_models.json
    python scripts/bench_tabular_models.py --rows 20000 --kinds gbdt,mlp   # a quick check

Datasets (--datasets): `titanic` and `house-prices` (the real Kaggle files in data/, the
competitions' own configs: accuracy and rmsle) and `synthetic`, kit.data.synthetic's table
of --rows rows (train and test together; AUC), written once to a cache folder under
--work-dir with its own competition folder (scripts/new_competition.py's template).
Kinds (--kinds): any name in kit.models.MODELS for a tabular task; one it lacks is skipped
with a message, as is one whose builder does not take a parameter bounded below.

Each (dataset, kind) is one `scripts/train.py` run in a subprocess (fresh memory and
thread pools per run; the synthetic runs get KIT_COMPETITIONS_ROOT, so titanic and
house-prices still resolve to competitions/): 3 folds, 1 repeat, `--set model.name=KIND`
and the bounds below. Runs, submissions and logs go under --work-dir, never runs/<comp>/.
Reported per run: the metric, the CV score over folds (mean ± std) and the OOF score, the
seconds of each fold (scores.json's fold_info: preprocessing, fit and the validation and
test predictions; the fold's `seconds`) and the run's wall seconds (reading the CSVs and
writing its parquet cache included). Progress goes to stderr; a markdown table for the
README, then the JSON summary as the last line, go to stdout (also --summary-json).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kit.data.synthetic import RECIPE, SLUG, make_table, split_table, write_competition  # noqa: E402
from kit.io import write_json  # noqa: E402
from kit.models import MODELS  # noqa: E402
from kit.paths import ROOT, data_root  # noqa: E402
from kit.runtime.threads import usable_cores  # noqa: E402

KINDS = ("gbdt", "lgbm", "xgb", "catboost", "rf", "mlp", "tabm")
CV = {"cv.n_splits": 3, "cv.repeats": 1}  # every run

# --set overrides per kind on every dataset. The boosters' rounds are a cap: early stopping
# (50 rounds without a better validation loss) picks fewer.
EVERY_DATASET = {
    kind: {f"model.params.{kind}.rounds": 1000,
           f"model.params.{kind}.early_stopping_rounds": 50}
    for kind in ("lgbm", "xgb", "catboost")
}

# --set overrides per kind on the synthetic table only (1M rows by default: 533k training
# rows per fold, 40 columns), so each kind's three folds take minutes, not hours, on 2
# cores. Titanic and House Prices keep their configs' settings (they are small).
# Measured at 1M rows on 2 cores: at the kit's learning rate 0.05 with 1000 rounds, lgbm
# stopped after ~800 rounds (55 s per fold) and xgb ran into the cap (190 s per fold).
# Hence learning rate 0.1 and 300 rounds here: per fold lgbm 22 s, xgb 67-92 s, catboost
# 132 s, all three at the cap (the table's "best" column shows where a cap binds: a
# booster there would gain from more rounds); the whole bench took 18 min.
# To finish in about 15 minutes, xgb gets 200 rounds and catboost 150 (the slowest per
# round): a fixed compute budget each, not their best scores.
BIG_ROUNDS = {"lgbm": 300, "xgb": 200, "catboost": 150}
BIG_TABLE = {
    **{kind: {f"model.params.{kind}.rounds": rounds, f"model.params.{kind}.learning_rate": 0.1}
       for kind, rounds in BIG_ROUNDS.items()},
    # HistGradientBoosting: at most 1000 trees at learning rate 0.1; its early stopping
    # holds out 10% of the fold's training rows and stops after 10 rounds without gain
    "gbdt": {"model.params.gbdt.max_iter": 1000, "model.params.gbdt.learning_rate": 0.1,
             "model.params.gbdt.early_stopping": True},
    # RandomForest: 100 trees, each on a 10% bootstrap sample (53k rows) with leaves of
    # >= 20 rows (measured: 20 s per fold)
    "rf": {"model.params.rf.n_estimators": 100, "model.params.rf.max_samples": 0.1,
           "model.params.rf.min_samples_leaf": 20},
    # the MLP: 4 epochs of batches of 1024 rows (521 steps, ~3.3 s per epoch measured)
    "mlp": {"train.epochs": 4, "train.batch_size": 1024},
    # TabM: as the MLP, its k = 8 members cost about k times an MLP step
    "tabm": {"train.epochs": 4, "train.batch_size": 1024},
}


@dataclass(frozen=True)
class Dataset:
    name: str  # as --datasets names it
    slug: str  # the competition
    data: Path
    competitions: Path | None = None  # KIT_COMPETITIONS_ROOT for its runs (None: as is)
    big: bool = False  # BIG_TABLE bounds apply


REAL = {"titanic": "titanic", "house-prices": "house-prices-advanced-regression-techniques"}
DATASETS = (*REAL, "synthetic")  # --datasets names -> the real ones' competition slugs


def log(msg: str) -> None:
    print(f"[bench_tabular_models] {msg}", file=sys.stderr, flush=True)


# -- datasets --------------------------------------------------------------------------------

def synthetic_dataset(work_dir: Path, rows: int, seed: int) -> tuple[Dataset, dict]:
    """The synthetic competition, written once per (recipe, rows, seed) and reused."""
    folder = work_dir / f"synthetic-{RECIPE}-{rows}rows-seed{seed}"
    data, competitions = folder / "data", folder / "competitions"
    written = [folder / "recipe.json", competitions / SLUG / "config.toml",
               *(data / f for f in ("train.csv", "test.csv", "sample_submission.csv"))]
    if not all(p.exists() for p in written):  # recipe.json last: a finished write
        log(f"writing the synthetic table ({rows} rows, recipe {RECIPE}, seed {seed}) to "
            f"{folder}")
        start = time.perf_counter()
        write_competition(data, rows, seed, competitions=competitions)
        write_json(folder / "recipe.json", {**recipe_facts(rows, seed),
                                            "write_seconds": time.perf_counter() - start})
    facts = json.loads((folder / "recipe.json").read_text())
    return Dataset("synthetic", SLUG, data, competitions, big=True), facts


def recipe_facts(rows: int, seed: int) -> dict:
    """The training rows' positive rate and Bayes AUC (the true log-odds as the score):
    the ceiling for any OOF AUC on them."""
    from sklearn.metrics import roc_auc_score

    train, _ = split_table(make_table(rows, seed, logit=True), seed=seed)
    return {"recipe": RECIPE, "rows": rows, "seed": seed, "train_rows": len(train),
            "positive_rate": float(train["target"].mean()),
            "bayes_auc": float(roc_auc_score(train["target"], train["logit"]))}


# -- one run ---------------------------------------------------------------------------------

def overrides(kind: str, dataset: Dataset, num_threads: int, extra: list[str]) -> list[str]:
    sets = {"model.name": kind, **CV, **EVERY_DATASET.get(kind, {})}
    if dataset.big:  # the tree kinds take their threads from train.num_threads too
        sets.update({"train.num_threads": num_threads, **BIG_TABLE.get(kind, {})})
    return [f"{k}={_toml(v)}" for k, v in sets.items()] + extra


def _toml(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def builder_params(kind: str) -> set[str] | None:
    """The model params the kind's builder takes; None when it takes any (**params)."""
    params = inspect.signature(MODELS[kind].builder).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is p.KEYWORD_ONLY}


def skip_reason(kind: str, dataset: Dataset) -> str:
    """Why (kind, dataset) cannot run as bounded, or "" when it can."""
    if kind not in MODELS or MODELS[kind].task != "tabular":
        valid = sorted(n for n, e in MODELS.items() if e.task == "tabular")
        return f"no tabular model {kind!r} in kit.models.MODELS (have: {', '.join(valid)})"
    if not (dataset.data / "train.csv").exists():
        return f"no {dataset.data / 'train.csv'}"
    taken = builder_params(kind)
    bounds = {**EVERY_DATASET.get(kind, {}), **(BIG_TABLE.get(kind, {}) if dataset.big else {})}
    prefix = f"model.params.{kind}."
    missing = [k for k in bounds if k.startswith(prefix) and taken is not None
               and k[len(prefix):] not in taken]
    if missing:
        return (f"its builder takes none of {missing} (takes: {', '.join(sorted(taken))}); "
                "update the bounds at the top of scripts/bench_tabular_models.py")
    return ""


def run_one(kind: str, dataset: Dataset, work_dir: Path, sets: list[str]) -> dict:
    """scripts/train.py for (dataset, kind) in a subprocess; its scores and fold seconds."""
    name = f"{dataset.name}_{kind}"
    summary_path, log_path = work_dir / "summaries" / f"{name}.json", work_dir / "logs" / f"{name}.log"
    summary_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--comp", dataset.slug,
           "--data", str(dataset.data), "--runs", str(work_dir / "runs"),
           "--submissions", str(work_dir / "submissions"), "--summary-json", str(summary_path),
           *[arg for s in sets for arg in ("--set", s)]]
    env = dict(os.environ)
    if dataset.competitions is not None:
        env["KIT_COMPETITIONS_ROOT"] = str(dataset.competitions)
    start = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    record = {"dataset": dataset.name, "kind": kind, "overrides": sets, "log": str(log_path),
              "run_seconds": round(seconds, 1)}
    if proc.returncode != 0 or not summary_path.exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        return {**record, "status": "failed", "error": tail[0]}
    run_dir = Path(json.loads(summary_path.read_text())["run_dir"])
    return {**record, "status": "ok", **scores_of(run_dir)}


def scores_of(run_dir: Path) -> dict:
    from kit.run_folder import read_run_info, read_scores

    scores = read_scores(run_dir)
    info = scores.get("fold_info", [])
    fold_seconds = [round(i["seconds"], 2) for i in info]
    threads = read_run_info(run_dir).get("threads", {})
    return {"metric": scores["metric"], "mode": scores["mode"], "mean": scores["mean"],
            "std": scores["std"], "fold_scores": scores["fold_scores"], "oof": scores["oof"],
            "fold_seconds": fold_seconds,
            "fold_seconds_mean": round(float(np.mean(fold_seconds)), 2) if info else None,
            "fold_info": info, "num_threads": threads.get("num_threads"),
            "run_dir": str(run_dir)}


# -- lgbm wrapper overhead -------------------------------------------------------------------

OVERHEAD_ROWS, OVERHEAD_ROUNDS, OVERHEAD_REPEATS = 200_000, 100, 5


def lgbm_overhead(rows: int = OVERHEAD_ROWS, rounds: int = OVERHEAD_ROUNDS,
                  repeats: int = OVERHEAD_REPEATS, seed: int = 0) -> dict:
    """The kit's `lgbm` fit of one fold against `lgb.train` on the same rows, parameters,
    threads and round count (early stopping set past the budget, so both grow `rounds`
    trees). Each timer starts from the raw fold frames (strings, NaN) and covers the
    category conversion and the Dataset construction: the kit's fold preprocessors, its
    frame and Booster.fit; pandas `astype("category")` (validation rows on the training
    categories), `lgb.Dataset` and `lgb.train` directly. The two are timed in turns,
    alternating which goes first; `overhead` is the median of the paired ratios - 1."""
    import lightgbm as lgb
    import pandas as pd

    from kit.data.tabular import CategoricalPreprocessor, NumericPreprocessor
    from kit.models import build_model
    from kit.tasks.tabular.task import booster_frame

    frame = make_table(rows, seed)
    cut = int(0.8 * len(frame))
    train, valid = frame.iloc[:cut], frame.iloc[cut:]
    numeric = [c for c in frame.columns if c.startswith("num_")]
    categorical = [c for c in frame.columns if c.startswith("cat_")]
    threads = usable_cores()

    def model():
        return build_model("lgbm", task="tabular", problem="classification", n_outputs=1,
                           rounds=rounds, early_stopping_rounds=rounds + 1, seed=seed,
                           num_threads=threads)

    params = model()._library_params()  # exactly what the kit hands lgb.train

    def kit_fit() -> float:
        start = time.perf_counter()
        num = NumericPreprocessor().fit(train, numeric)
        cat = CategoricalPreprocessor(min_count=2).fit(train, categorical)
        booster = model()
        booster.fit(booster_frame(train, num, cat), train["target"].to_numpy(),
                    booster_frame(valid, num, cat), valid["target"].to_numpy())
        assert len(booster.history) == rounds
        return time.perf_counter() - start

    def direct_fit() -> float:
        start = time.perf_counter()
        x_train = train[numeric + categorical].astype({c: "category" for c in categorical})
        x_valid = valid[numeric + categorical].assign(**{  # unseen values -> missing
            c: pd.Categorical(valid[c].where(valid[c].isin(x_train[c].cat.categories)),
                              categories=x_train[c].cat.categories) for c in categorical})
        data = lgb.Dataset(x_train, label=train["target"].to_numpy())
        held = lgb.Dataset(x_valid, label=valid["target"].to_numpy(), reference=data)
        booster = lgb.train(params, data, num_boost_round=rounds, valid_sets=[held],
                            callbacks=[lgb.early_stopping(rounds + 1, verbose=False)])
        assert booster.current_iteration() == rounds
        return time.perf_counter() - start

    kit_fit(), direct_fit()  # warm-up: imports, page cache, OpenMP pool
    kit_s, direct_s = [], []
    for r in range(repeats):
        order = (kit_fit, direct_fit) if r % 2 == 0 else (direct_fit, kit_fit)
        times = {fn: fn() for fn in order}
        kit_s.append(times[kit_fit])
        direct_s.append(times[direct_fit])
        log(f"lgbm overhead pair {r + 1}/{repeats}: kit {kit_s[-1]:.2f}s, "
            f"lightgbm {direct_s[-1]:.2f}s")
    ratios = [k / d for k, d in zip(kit_s, direct_s, strict=True)]
    return {"rows": rows, "train_rows": cut, "rounds": rounds, "repeats": repeats,
            "threads": threads, "kit_seconds": kit_s, "lightgbm_seconds": direct_s,
            "overhead": float(np.median(ratios)) - 1.0}


# -- report ----------------------------------------------------------------------------------

def markdown_table(records: list[dict]) -> str:
    """One row per run, ready to paste into the README."""
    lines = ["| dataset | kind | metric | CV mean ± std (3 folds) | OOF | best | s / fold "
             "| run s |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r["status"] == "ok":
            lines.append(f"| {r['dataset']} | {r['kind']} | {r['metric']} | {r['mean']:.4f} ± "
                         f"{r['std']:.4f} | {r['oof']:.4f} | {best(r['fold_info'])} | "
                         f"{r['fold_seconds_mean']:.1f} | {r['run_seconds']:.0f} |")
        else:
            lines.append(f"| {r['dataset']} | {r['kind']} | {r['status']}: "
                         f"{r.get('error') or r.get('reason')} | | | | | |")
    return "\n".join(lines)


def best(fold_info: list[dict]) -> str:
    """Where the folds' models stopped: mean best round / rounds run (boosters), mean best
    epoch, 1-based (mlp); "" for a kind that records neither (gbdt, rf)."""
    def mean(key):
        return np.mean([i[key] for i in fold_info])

    if fold_info and "best_iteration" in fold_info[0]:
        return f"{mean('best_iteration'):.0f} / {mean('rounds'):.0f}"
    if fold_info and "best_epoch" in fold_info[0]:
        return f"epoch {mean('best_epoch') + 1:.1f}"
    return ""


# -- main ------------------------------------------------------------------------------------

def names(text: str, valid: tuple[str, ...], flag: str, p) -> list[str]:
    """A comma-separated --datasets / --kinds value; with `valid`, each must be one of them."""
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    if not chosen or (valid and set(chosen) - set(valid)):
        p.error(f"{flag} {text!r}: give a comma-separated list of {', '.join(valid or KINDS)}")
    return chosen


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"of {', '.join(DATASETS)}")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help="model names in kit.models (missing ones are skipped)")
    p.add_argument("--rows", type=int, default=1_000_000,
                   help="rows of the synthetic table, train and test together (80 / 20)")
    p.add_argument("--seed", type=int, default=0, help="the synthetic table's seed")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_tabular_models")
    p.add_argument("--num-threads", type=int, default=0,
                   help="train.num_threads on the synthetic table (0: every usable core); "
                   "titanic and house-prices keep their configs' (1: tiny batches)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="one more override for every run, after the bounds (repeatable)")
    p.add_argument("--overhead-repeats", type=int, default=OVERHEAD_REPEATS,
                   help="paired kit / lightgbm fits for the wrapper overhead (0: skip)")
    p.add_argument("--summary-json", type=Path)
    args = p.parse_args(argv)
    datasets = names(args.datasets, DATASETS, "--datasets", p)
    kinds = names(args.kinds, (), "--kinds", p)  # any name: a missing one is skipped
    if args.rows < 100 or args.num_threads < 0:
        p.error("need --rows >= 100 and --num-threads >= 0")
    num_threads = args.num_threads or usable_cores()

    chosen, facts = [], {}
    for name in datasets:
        if name == "synthetic":
            dataset, facts = synthetic_dataset(args.work_dir, args.rows, args.seed)
        else:
            dataset = Dataset(name, REAL[name], data_root() / REAL[name])
        chosen.append(dataset)
    if facts:
        log(f"synthetic training rows: positive rate {facts['positive_rate']:.3f}, Bayes AUC "
            f"{facts['bayes_auc']:.4f} (the ceiling for the OOF AUC)")

    records, started, load = [], time.perf_counter(), os.getloadavg()
    for dataset in chosen:
        for kind in kinds:
            reason = skip_reason(kind, dataset)
            if reason:
                log(f"{dataset.name} / {kind}: skipped: {reason}")
                records.append({"dataset": dataset.name, "kind": kind, "status": "skipped",
                                "reason": reason})
                continue
            sets = overrides(kind, dataset, num_threads, args.extra)
            log(f"{dataset.name} / {kind}: train.py --set {' --set '.join(sets)}")
            record = run_one(kind, dataset, args.work_dir, sets)
            records.append(record)
            if record["status"] == "ok":
                log(f"{dataset.name} / {kind}: {record['metric']} {record['mean']:.4f} ± "
                    f"{record['std']:.4f} (OOF {record['oof']:.4f}), folds "
                    f"{record['fold_seconds']} s, run {record['run_seconds']:.0f} s")
            else:
                log(f"{dataset.name} / {kind}: FAILED ({record['error']}); log: {record['log']}")

    overhead = None
    if args.overhead_repeats and "lgbm" in MODELS:
        overhead = lgbm_overhead(min(OVERHEAD_ROWS, args.rows), repeats=args.overhead_repeats,
                                 seed=args.seed)
        log(f"lgbm wrapper overhead: {overhead['overhead']:+.3f} (median of "
            f"{overhead['repeats']} paired fits, {overhead['train_rows']} training rows, "
            f"{overhead['rounds']} rounds)")
    table = markdown_table(records)
    summary = {"runs": records, "table": table, "lgbm_overhead": overhead,
               "synthetic": facts, "datasets": datasets,
               "kinds": kinds, "bounds": {"every_dataset": EVERY_DATASET, "big_table": BIG_TABLE,
                                          "cv": CV},
               "num_threads": num_threads, "cpu_count": os.cpu_count(),
               # 1-minute load average before and after: other work on the machine slows
               # every figure above (a shared 2-core machine)
               "load_average": [round(load[0], 2), round(os.getloadavg()[0], 2)],
               "seconds": round(time.perf_counter() - started, 1),
               "work_dir": str(args.work_dir)}
    if args.summary_json:
        write_json(args.summary_json, summary)
    print(table)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
